import DiskImage

extension Btrfs.ChecksumType {
    /// Whether this reader verifies the algorithm (all four are).
    public var isVerified: Bool { true }

    /// The checksum of `bytes` as btrfs stores it in the first bytes of the 32-byte `csum`
    /// field: crc32c as le32, xxhash64 (seed 0) as le64, sha256 and blake2b-256 as their 32 bytes.
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
            return BLAKE2b.hash(bytes, outputLength: 32)
        }
    }

    private static func littleEndian(_ value: UInt64, count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    /// Whether `bytes` have the checksum `stored` (the first bytes of a csum as btrfs stores
    /// it); crc32c and xxhash64 compared as numbers, without building a digest.
    func matches(_ stored: ArraySlice<UInt8>, _ bytes: UnsafeRawBufferPointer) -> Bool {
        func number(_ count: Int) -> UInt64 {
            stored.prefix(count).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        }
        switch self {
        case .crc32c: return stored.count >= 4 && number(4) == UInt64(CRC32C.checksum(bytes))
        case .xxhash64: return stored.count >= 8 && number(8) == XXHash64.hash(bytes)
        case .sha256, .blake2b:
            guard let digest = digest(bytes) else { return true }
            return stored.elementsEqual(digest.prefix(stored.count))
        }
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

/// BLAKE2b (RFC 7693) without a key, as btrfs uses it with a 32-byte digest (`csum_type` 3).
enum BLAKE2b {
    private static let iv: [UInt64] = [
        0x6A09_E667_F3BC_C908, 0xBB67_AE85_84CA_A73B, 0x3C6E_F372_FE94_F82B, 0xA54F_F53A_5F1D_36F1,
        0x510E_527F_ADE6_82D1, 0x9B05_688C_2B3E_6C1F, 0x1F83_D9AB_FB41_BD6B, 0x5BE0_CD19_137E_2179,
    ]
    private static let sigma: [[Int]] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
        [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4], [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
        [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13], [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
        [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11], [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
        [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5], [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    ]

    /// The `outputLength`-byte digest (1...64) of `bytes`.
    static func hash(_ bytes: UnsafeRawBufferPointer, outputLength: Int = 32) -> [UInt8] {
        var h = iv
        h[0] ^= 0x0101_0000 ^ UInt64(outputLength)
        var counter: UInt64 = 0
        var position = 0
        let n = bytes.count
        // Every full block but the last is compressed as it comes; the last (possibly partial or
        // empty) is padded with zeros and marked final.
        while n - position > 128 {
            counter &+= 128
            compress(&h, block(bytes, position, 128), counter, final: false)
            position += 128
        }
        counter &+= UInt64(n - position)
        compress(&h, block(bytes, position, n - position), counter, final: true)
        var out: [UInt8] = []
        for word in h { for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: word >> (8 * UInt64(i)))) } }
        return Array(out.prefix(outputLength))
    }

    private static func block(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ count: Int) -> [UInt64] {
        var padded = [UInt8](repeating: 0, count: 128)
        for i in 0..<count { padded[i] = bytes[at + i] }
        return (0..<16).map { w in (0..<8).reduce(UInt64(0)) { $0 | UInt64(padded[8 * w + $1]) << (8 * UInt64($1)) } }
    }

    private static func compress(_ h: inout [UInt64], _ m: [UInt64], _ counter: UInt64, final: Bool) {
        var v = h + iv
        v[12] ^= counter
        if final { v[14] = ~v[14] }
        func rotr(_ x: UInt64, _ n: UInt64) -> UInt64 { (x >> n) | (x << (64 - n)) }
        func g(_ a: Int, _ b: Int, _ c: Int, _ d: Int, _ x: UInt64, _ y: UInt64) {
            v[a] = v[a] &+ v[b] &+ x; v[d] = rotr(v[d] ^ v[a], 32)
            v[c] = v[c] &+ v[d]; v[b] = rotr(v[b] ^ v[c], 24)
            v[a] = v[a] &+ v[b] &+ y; v[d] = rotr(v[d] ^ v[a], 16)
            v[c] = v[c] &+ v[d]; v[b] = rotr(v[b] ^ v[c], 63)
        }
        for round in 0..<12 {
            let s = sigma[round % 10]
            g(0, 4, 8, 12, m[s[0]], m[s[1]]); g(1, 5, 9, 13, m[s[2]], m[s[3]])
            g(2, 6, 10, 14, m[s[4]], m[s[5]]); g(3, 7, 11, 15, m[s[6]], m[s[7]])
            g(0, 5, 10, 15, m[s[8]], m[s[9]]); g(1, 6, 11, 12, m[s[10]], m[s[11]])
            g(2, 7, 8, 13, m[s[12]], m[s[13]]); g(3, 4, 9, 14, m[s[14]], m[s[15]])
        }
        for i in 0..<8 { h[i] ^= v[i] ^ v[i + 8] }
    }
}
