"""Workspace datasets: the manifest, checksummed downloads and the built-in generated sets.

  manifest   reads and validates a datasets manifest (the bundled datasets_manifest.yaml, or the
             file THANOSQL_DATASETS_MANIFEST names); DatasetError names the file and key
  download   fetch(): streamed HTTP download with size and sha256 checks; install(): a dataset
             into ``thanosql-dataset/<name>/`` through the dataset store (stores.FolderStore):
             built in a staging folder, archives unpacked within a size limit, put in place
             atomically
  builtin    deterministic generators (digits, captioned shapes) that need no network
  prepare    recipes that turn public sources (MNIST idx files, Unsplash Lite) into the
             tutorial layout

Heavy libraries (PIL, pandas) are imported inside the functions that use them.
"""
