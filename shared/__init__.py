"""What every tab shares: settings, device/dtype policy, the model catalog, loaders and one cache."""
