"""One dataclass per experiment-config section; each file is owned by the phase it configures."""
