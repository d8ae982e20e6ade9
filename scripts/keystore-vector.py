#!/usr/bin/env python3
# Reproduces the test vector of docs/keystore.md without the Rust code: Python stdlib scrypt,
# the `cryptography` package (ChaCha20-Poly1305, Ed25519) and a hand-written HChaCha20 and
# bech32m. Usage: python3 scripts/keystore-vector.py (prints the intermediate values and the file).
# Independent implementation of the cairn-keystore v1 format (Python stdlib + cryptography).
import hashlib, json, struct
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

def rotl(v, c): return ((v << c) & 0xffffffff) | (v >> (32 - c))
def qr(s, a, b, c, d):
    s[a]=(s[a]+s[b])&0xffffffff; s[d]=rotl(s[d]^s[a],16)
    s[c]=(s[c]+s[d])&0xffffffff; s[b]=rotl(s[b]^s[c],12)
    s[a]=(s[a]+s[b])&0xffffffff; s[d]=rotl(s[d]^s[a],8)
    s[c]=(s[c]+s[d])&0xffffffff; s[b]=rotl(s[b]^s[c],7)
def hchacha20(key, n16):
    s = [0x61707865,0x3320646e,0x79622d32,0x6b206574] + list(struct.unpack('<8I', key)) + list(struct.unpack('<4I', n16))
    for _ in range(10):
        qr(s,0,4,8,12); qr(s,1,5,9,13); qr(s,2,6,10,14); qr(s,3,7,11,15)
        qr(s,0,5,10,15); qr(s,1,6,11,12); qr(s,2,7,8,13); qr(s,3,4,9,14)
    return struct.pack('<8I', *(s[0:4]+s[12:16]))
# RFC draft-irtf-cfrg-xchacha test vector for HChaCha20 (section 2.2.1)
k = bytes(range(32)); n = bytes.fromhex('000000090000004a0000000031415927')
assert hchacha20(k, n).hex() == '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc'

CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'
def polymod(values):
    GEN = [0x3b6a57b2,0x26508e6d,0x1ea119fa,0x3d4233dd,0x2a1462b3]; chk = 1
    for v in values:
        b = chk >> 25; chk = (chk & 0x1ffffff) << 5 ^ v
        for i in range(5): chk ^= GEN[i] if ((b >> i) & 1) else 0
    return chk
def hrp_expand(h): return [ord(x) >> 5 for x in h] + [0] + [ord(x) & 31 for x in h]
def convertbits(data, f, t):
    acc = 0; bits = 0; out = []
    for v in data:
        acc = (acc << f) | v; bits += f
        while bits >= t: bits -= t; out.append((acc >> bits) & ((1 << t) - 1))
    if bits: out.append((acc << (t - bits)) & ((1 << t) - 1))
    return out
def bech32m(hrp, data8):
    d = convertbits(data8, 8, 5)
    pm = polymod(hrp_expand(hrp) + d + [0]*6) ^ 0x2bc830a3
    chk = [(pm >> 5*(5-i)) & 31 for i in range(6)]
    return hrp + '1' + ''.join(CHARSET[x] for x in d + chk)

passphrase = 'correct horse battery staple'
seed = bytes.fromhex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')
salt = bytes(range(32))
nonce = bytes(range(0xa0, 0xa0 + 24))
log_n, r, p = 17, 8, 1
pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
assert pub.hex() == 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'
address = bech32m('cairn', pub)
key = hashlib.scrypt(passphrase.encode(), salt=salt, n=2**log_n, r=r, p=p, maxmem=512*1024*1024, dklen=32)
aad = b'cairn-keystore v1 ' + address.encode()
sub = hchacha20(key, nonce[:16])
ct = ChaCha20Poly1305(sub).encrypt(b'\0\0\0\0' + nonce[16:], seed, aad)
doc = {"version": 1, "kind": "cairn-keystore", "address": address,
       "kdf": {"name": "scrypt", "log_n": log_n, "r": r, "p": p, "salt": salt.hex()},
       "cipher": {"name": "xchacha20poly1305", "nonce": nonce.hex()},
       "ciphertext": ct.hex()}
print("derived key:", key.hex())
print("aad:", aad.decode())
print("subkey:", sub.hex())
print(json.dumps(doc, indent=2))
