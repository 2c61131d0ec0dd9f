"""Milvus: the embedded Lite server (lite), collections and clients (milvus), bulk import (bulk), the writers (writer),
the search actors' client (searcher), and the embedded Milvus server used by tests and the scale bench
(embedded)."""
