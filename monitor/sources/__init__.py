"""Platform adapters behind one small protocol."""
