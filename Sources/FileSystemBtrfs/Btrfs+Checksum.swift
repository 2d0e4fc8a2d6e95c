import DiskImage

extension Btrfs.ChecksumType {
    /// Whether this reader can verify the algorithm (blake2b is not implemented: its blocks are
    /// read unverified and `BtrfsReader.checksumsVerified` says so).
    public var isVerified: Bool { self != .blake2b }

    /// The checksum of `bytes` as btrfs stores it in the first bytes of the 32-byte `csum`
    /// field: crc32c as le32, xxhash64 (seed 0) as le64, sha256 as its 32 bytes. Nil for
    /// blake2b.
    func digest(_ bytes: UnsafeRawBufferPointer) -> [UInt8]? {
        switch self {
        case .crc32c:
            return Self.littleEndian(UInt64(CRC32C.checksum(bytes)), count: 4)
        case .xxhash64:
            return Self.littleEndian(XXHash64.hash(bytes), count: 8)
        case .sha256:
            var hash = SHA256()
            hash.update(bytes)
            return hash.finalize()
        case .blake2b:
            return nil
        }
    }

    private static func littleEndian(_ value: UInt64, count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    /// Checks the `csum` at the start of `block` against the bytes after it (from 0x20).
    /// Returns false on a mismatch; true when it matches or cannot be verified.
    func verify(_ block: [UInt8]) -> Bool {
        block.withUnsafeBytes { raw in
            guard raw.count > 32, let digest = digest(UnsafeRawBufferPointer(rebasing: raw[32...])) else { return true }
            return raw.prefix(digest.count).elementsEqual(digest)
        }
    }
}

/// XXH64 (xxHash's 64-bit hash, seed 0 as btrfs uses it), after the reference algorithm
/// description (github.com/Cyan4973/xxHash doc/xxhash_spec.md).
enum XXHash64 {
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    private static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        var acc = acc &+ input &* p2
        acc = (acc << 31) | (acc >> 33)
        return acc &* p1
    }

    private static func merge(_ acc: UInt64, _ value: UInt64) -> UInt64 {
        (acc ^ round(0, value)) &* p1 &+ p4
    }

    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        func u32(_ at: Int) -> UInt64 { UInt64(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
        let n = bytes.count
        var position = 0
        var h: UInt64
        if n >= 32 {
            var v1 = seed &+ p1 &+ p2, v2 = seed &+ p2, v3 = seed, v4 = seed &- p1
            while n - position >= 32 {
                v1 = round(v1, u64(position))
                v2 = round(v2, u64(position + 8))
                v3 = round(v3, u64(position + 16))
                v4 = round(v4, u64(position + 24))
                position += 32
            }
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = merge(h, v1)
            h = merge(h, v2)
            h = merge(h, v3)
            h = merge(h, v4)
        } else {
            h = seed &+ p5
        }
        h = h &+ UInt64(n)
        while n - position >= 8 {
            h ^= round(0, u64(position))
            h = rotl(h, 27) &* p1 &+ p4
            position += 8
        }
        if n - position >= 4 {
            h ^= u32(position) &* p1
            h = rotl(h, 23) &* p2 &+ p3
            position += 4
        }
        while position < n {
            h ^= UInt64(bytes[position]) &* p5
            h = rotl(h, 11) &* p1
            position += 1
        }
        h ^= h >> 33
        h = h &* p2
        h ^= h >> 29
        h = h &* p3
        h ^= h >> 32
        return h
    }
}
