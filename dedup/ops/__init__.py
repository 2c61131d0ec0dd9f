"""The kernels the stages run: no Ray, no state, no files of the run's own (each testable alone).

hashing    bytes -> SHA-256; a batch of input units -> the files table
hashes     perceptual hashes (multihash, pHash, ...) of a decoded image
decode     bytes -> an upright RGB image at the model's input size, or the reason it cannot be decoded
plan       the files table -> one representative per content, vids, decode work units
models     uint8 image batches -> L2-normalised vectors (SSCD, ResNet-50, thumbnails)
sscd_net   SSCD's architecture (random and test models)
search     every pair at or above a threshold, exactly; the edge schema
verify     do two images share content (local features under one transform)?
graph      edges -> clusters with the chaining guard
canonical  the policy that says which image of a cluster is kept
manifest   clusters + files -> the manifest and error tables
"""
