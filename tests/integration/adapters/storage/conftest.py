def pytest_configure(config):
    # Also listed for the lead to add to pyproject's markers; registering twice is harmless.
    config.addinivalue_line("markers", "ceph: needs Ceph (ceph-mon, ceph-osd, radosgw); started by scripts/ceph-rgw.sh")
