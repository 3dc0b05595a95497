"""Communication between trainer and rollout engines outside Ray's object store."""
