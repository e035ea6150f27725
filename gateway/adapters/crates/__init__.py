"""Five Safes RO-Crate adapters: safe intake of BagIt/crate archives, result bags, offline SHACL validation."""
