"""The job's stages, one module each; a stage's name is its module's name, its key in ``state.json`` and in
``summary.json``. In order (:mod:`dedup.job` wires them, :mod:`dedup.runner` runs them):

weights       the model's file or weights, found and checked before any image is read
discover      inputs -> files.parquet: every file hashed, one vid per distinct content
reference     --reference: earlier runs' images, after the new vids; new files byte-identical to one
decode_embed  representatives -> vectors/: decoded, embedded (actors; GPU where there is one)
store         vectors -> the Milvus collection (in the background with exact search)
search        vectors -> edges.parquet, nearest.parquet (exact in memory, or Milvus's range search)
search_reference  the new vectors against the reference's (its Parquet vectors, or its collection)
inner         the pictures found inside images (pasted on a canvas, in a screenshot) against every image
union         a model with a hash, --reference or inner pictures: the searches' edges, one set
verify        edges in the band kept only where the images share content -> edges_checked.parquet
graph         edges -> clusters with one canonical each (chaining guard)
canonical     in each cluster, the best version kept (--canonical quality): its images measured, compared
attach        an image left alone joins the cluster of a kept image it copies, where that image is the better version
manifest      clusters + files + errors -> manifest, errors, keep/remove lists

The kernels they run (hashes, decoders, models, graph algorithms, the content check) are in
:mod:`dedup.ops`; Milvus is :mod:`dedup.vectordb`.
"""
from dedup.stages.attach import AttachStage
from dedup.stages.canonical import CanonicalStage
from dedup.stages.decode_embed import DecodeEmbedStage, Vectors
from dedup.stages.discover import DiscoverStage, Files
from dedup.stages.graph import GraphStage
from dedup.stages.inner import InnerStage
from dedup.stages.manifest import ManifestStage
from dedup.stages.reference import ReferenceStage
from dedup.stages.search import SearchStage
from dedup.stages.search_reference import SearchReferenceStage
from dedup.stages.store import StoreStage
from dedup.stages.union import UnionStage
from dedup.stages.verify import VerifyStage
from dedup.stages.weights import WeightsStage

__all__ = ["AttachStage", "CanonicalStage", "WeightsStage", "DiscoverStage", "ReferenceStage", "DecodeEmbedStage", "StoreStage", "SearchStage", "SearchReferenceStage",
           "InnerStage", "UnionStage", "VerifyStage",
           "GraphStage", "ManifestStage", "Files", "Vectors"]
