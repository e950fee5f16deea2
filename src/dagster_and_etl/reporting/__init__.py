"""What the assets tell Dagster, as plain translations of what the loads and the sources found."""
