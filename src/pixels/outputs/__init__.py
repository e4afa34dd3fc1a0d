"""What pixels writes: image files with their metadata, contact sheets, and the all-or-nothing transaction
every command writes through."""
