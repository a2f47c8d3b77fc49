"""The plumbing the techniques share, apart from the techniques themselves (methods/ holds one
file per technique, and the registry imports only those): BPF loaders and the kernel's BPF
calls, process helpers, ring readers, the in-process hooks' common side."""
