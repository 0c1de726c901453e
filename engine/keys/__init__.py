"""Keys: encryption at rest and the key that opens it.

``crypto`` holds the Fernet cipher, the column type that encrypts values and the key check
value; ``service`` finds the key (environment, key file or passphrase), checks it against
the database and reports its status (``KeyManager``); ``rotation`` re-encrypts every row
under a new key in resumable batches.
"""
