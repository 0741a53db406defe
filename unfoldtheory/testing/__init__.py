"""Property-testing toolkit for new unfolded architectures, built on hypothesis (imported lazily).

Under construction (issue 8).
"""

__all__: list[str] = []
