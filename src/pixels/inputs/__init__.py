"""What a user gives, read and checked before any model work: images and maps, prompt images, spec files,
and the checked edit job every front end builds."""
