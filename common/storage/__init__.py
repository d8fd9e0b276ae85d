"""Project storage (the StorageManager): resumable uploads, safe unpacking, download."""
