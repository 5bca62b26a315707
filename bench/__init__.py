import protocol  # noqa: F401  (pins kernel dispatch before any module of this room loads torch)
