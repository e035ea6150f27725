"""RO-Crate adapters.

Five Safes request/result crates: `bagit` (safe intake of a BagIt zip or crate directory, result bags),
`shacl` (offline validation against the bundled Five Safes shapes), with `safe_unpack`, `contexts` and
`checksums` as their helpers. Workflow Run Crates of WES runs: `run_crate`, `run_provenance`.
"""
