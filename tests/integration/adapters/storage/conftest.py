def pytest_configure(config):
    # Also listed in pyproject's markers; registering twice is harmless.
    config.addinivalue_line("markers", "ceph: needs Ceph (ceph-mon, ceph-osd, radosgw); started by scripts/ceph-rgw.sh")
