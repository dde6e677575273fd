"""absl binaries, one per experiment: parse flags, call the library, write a run directory."""
