"""The write paths of end-to-end encryption support, one module per capability."""
