"""Client tests reuse the end-to-end fixtures (a real ``python -m backend`` process).

Imported explicitly: ``pytest_plugins`` is only allowed in the root conftest.
"""

from tests.e2e.conftest import make_server, server  # noqa: F401  (fixtures)
