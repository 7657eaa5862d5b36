"""crossnet-dist: distributed unpaired image-to-image translation."""
