"""The job's stages, one module each, in pipeline order.

hashing   units -> files table (path, sha, bytes, error): exact copies, before any decoding
plan      files table -> one representative per distinct sha, with a vector id (vid)
decode    representative units -> 224x224 RGB pixels (CPU tasks)
embed     pixels -> L2-normalised feature vectors (actor pool, GPU where there is one)
store     vectors -> Milvus (parallel batched writers)
search    vectors -> similarity edges (parallel search actors, range search)
graph     edges -> connected components -> clusters with one canonical each (chaining guard)
manifest  clusters + files + errors -> manifest, errors, keep/remove lists
"""
