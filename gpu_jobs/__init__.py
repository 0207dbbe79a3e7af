"""What runs on the box that trains: one experiment, locally or on a GPU service."""
