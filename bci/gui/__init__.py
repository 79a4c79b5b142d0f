"""Qt windows of the runtime. Importing this package loads no Qt; import a module."""
