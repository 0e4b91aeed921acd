"""SigV4 streaming uploads (aws-chunked bodies) as AWS documents them, for the tests that need
to send exactly what current SDKs send over HTTPS: `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` (every
chunk signed), `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` (chunks and a trailing checksum
signed) and `STREAMING-UNSIGNED-PAYLOAD-TRAILER`. boto3 and the aws cli use the trailer forms only
over HTTPS, so a plain-HTTP test stamp would otherwise never see them.

Also pure-Python CRC32C and CRC64NVME (the reference, bit-by-bit definitions), so checksum tests
do not depend on the server's own implementation.
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import urllib.parse
import zlib

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _crc_table(poly, width):
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc & ((1 << width) - 1))
    return table


_CRC32C = _crc_table(0x82F63B78, 32)
_CRC64NVME = _crc_table(0x9A6C9329AC4BC9B5, 64)


def _reflected_crc(table, width, data):
    mask = (1 << width) - 1
    crc = mask
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


def crc32c(data):
    return _reflected_crc(_CRC32C, 32, data)


def crc64nvme(data):
    return _reflected_crc(_CRC64NVME, 64, data)


def checksum_b64(algorithm, data):
    """The base64 value S3 shows for `data` under `algorithm` (CRC32, CRC32C, ...)."""
    algorithm = algorithm.upper()
    if algorithm == "CRC32":
        raw = (zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")
    elif algorithm == "CRC32C":
        raw = crc32c(data).to_bytes(4, "big")
    elif algorithm == "CRC64NVME":
        raw = crc64nvme(data).to_bytes(8, "big")
    elif algorithm == "SHA1":
        raw = hashlib.sha1(data).digest()
    elif algorithm == "SHA256":
        raw = hashlib.sha256(data).digest()
    else:
        raise ValueError(algorithm)
    return base64.b64encode(raw).decode()


assert crc32c(b"123456789") == 0xE3069283
assert crc64nvme(b"123456789") == 0xAE8B14860A799888


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class Signer:
    def __init__(self, access_key, secret_key, region="us-east-1", service="s3", now=None):
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.service = service
        now = now or datetime.datetime.now(datetime.timezone.utc)
        self.amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        self.date = now.strftime("%Y%m%d")
        self.scope = f"{self.date}/{region}/{service}/aws4_request"
        key = _hmac(("AWS4" + secret_key).encode(), self.date)
        key = _hmac(key, region)
        key = _hmac(key, service)
        self.key = _hmac(key, "aws4_request")

    def sign(self, string_to_sign):
        return hmac.new(self.key, string_to_sign.encode(), hashlib.sha256).hexdigest()

    def seed(self, method, path, headers, payload_hash):
        """Adds x-amz-date and Authorization to `headers`; returns the seed signature."""
        headers["x-amz-date"] = self.amz_date
        headers["x-amz-content-sha256"] = payload_hash
        canonical_headers = sorted((k.lower(), " ".join(str(v).split())) for k, v in headers.items())
        signed = ";".join(k for k, _ in canonical_headers)
        canonical_uri = urllib.parse.quote(path, safe="/~")
        canonical = "\n".join(
            [
                method,
                canonical_uri,
                "",
                "".join(f"{k}:{v}\n" for k, v in canonical_headers),
                signed,
                payload_hash,
            ]
        )
        string_to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", self.amz_date, self.scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        signature = self.sign(string_to_sign)
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{self.scope}, SignedHeaders={signed}, Signature={signature}"
        )
        return signature

    def chunk_signature(self, previous, data):
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                self.amz_date,
                self.scope,
                previous,
                EMPTY_SHA256,
                hashlib.sha256(data).hexdigest(),
            ]
        )
        return self.sign(string_to_sign)

    def trailer_signature(self, previous, canonical_trailers):
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                self.amz_date,
                self.scope,
                previous,
                hashlib.sha256(canonical_trailers.encode()).hexdigest(),
            ]
        )
        return self.sign(string_to_sign)


def chunked_put(
    endpoint,
    access_key,
    secret_key,
    path,
    data,
    mode="signed",
    chunk_size=64 * 1024,
    trailer=None,
    tamper=None,
    extra_headers=None,
    decoded_length=None,
):
    """PUTs `data` to `path` as an aws-chunked body. `mode`: "signed" (every chunk signed),
    "signed-trailer" or "unsigned-trailer". `trailer`: (header name, value) sent after the last
    chunk. `tamper`: "chunk" flips a byte of the first chunk after signing it, "trailer" changes
    the trailer value after signing it. Returns (status, headers, body)."""
    payload = {
        "signed": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "signed-trailer": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "unsigned-trailer": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }[mode]
    url = urllib.parse.urlparse(endpoint)
    signer = Signer(access_key, secret_key)
    headers = {
        "host": url.netloc,
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data) if decoded_length is None else decoded_length),
        **(extra_headers or {}),
    }
    if trailer is not None:
        headers["x-amz-trailer"] = trailer[0]
    previous = signer.seed("PUT", path, headers, payload)
    signed_chunks = mode != "unsigned-trailer"
    body = bytearray()
    pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    for index, piece in enumerate(pieces):
        if signed_chunks:
            previous = signer.chunk_signature(previous, piece)
            body += f"{len(piece):x};chunk-signature={previous}\r\n".encode()
        else:
            body += f"{len(piece):x}\r\n".encode()
        if tamper == "chunk" and index == 0 and piece:
            piece = bytes([piece[0] ^ 0xFF]) + piece[1:]
        body += piece
        # The final zero-length chunk is followed by the trailers, if any.
        if piece or trailer is None:
            body += b"\r\n"
    if trailer is not None:
        name, value = trailer
        canonical = f"{name}:{value}\n"
        signature = signer.trailer_signature(previous, canonical)
        if tamper == "trailer":
            value = value[::-1]
        body += f"{name}:{value}\r\n".encode()
        if mode == "signed-trailer":
            body += f"x-amz-trailer-signature:{signature}\r\n".encode()
        body += b"\r\n"
    headers["content-length"] = str(len(body))
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        connection.request("PUT", path, body=bytes(body), headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()
