"""Everything that touches the chain: compiled artifacts, deployment, typed errors, verification."""
