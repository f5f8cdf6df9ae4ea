import pytest

from tests.support import ServerProcess


@pytest.fixture
def served(tmp_path):
    """
    A ``twistd ftx`` subprocess serving C{tmp_path / "root"}, and an empty
    local folder C{tmp_path / "local"} for the client side.
    """
    root = tmp_path / "root"
    local = tmp_path / "local"
    root.mkdir()
    local.mkdir()
    server = ServerProcess(str(root))
    try:
        yield server, root, local
    finally:
        server.stop()
