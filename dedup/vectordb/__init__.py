"""Milvus: the embedded Lite server and collections (milvus), bulk import (bulk), the writers (writer),
the search actors' client (searcher), and the embedded Milvus server used by tests and the scale bench
(embedded)."""
