"""Pure logic of autoopt: no SQL, no HTTP, no files, no wall clock."""
