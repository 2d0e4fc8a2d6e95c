import DiskImage

/// bbolt (etcd-io/bbolt, format version 2), read-only: the key/value files of containerd
/// (`meta.db`, the overlayfs snapshotter's `metadata.db`), Docker's volume store and Podman's
/// `bolt_state.db`.
///
/// The format, from bbolt's page.go, node.go, bucket.go and db.go:
/// - the file is a sequence of pages of `pageSize` bytes (from the meta page: never assumed);
///   page `n` starts at `n * pageSize`; a page with `overflow = k` spans `k + 1` pages;
/// - every page starts with a 16-byte header: `id` u64 @0, `flags` u16 @8 (branch 0x01,
///   leaf 0x02, meta 0x04, freelist 0x10), `count` u16 @10, `overflow` u32 @12;
/// - pages 0 and 1 are meta pages: after the header, `magic` u32 @0 (0xED0CDAED), `version` u32
///   @4 (2), `pageSize` u32 @8, `flags` u32 @12, the root bucket (`root` pgid u64 @16,
///   `sequence` u64 @24), `freelist` pgid @32, `pgid` (high-water mark: pages in use) @40,
///   `txid` @48, `checksum` @56 = FNV-1a 64 of bytes 0..<56; the valid meta with the higher txid
///   is the current one;
/// - branch elements (16 bytes each, after the header): `pos` u32, `ksize` u32, `pgid` u64; the
///   key is at the element's own offset + `pos`;
/// - leaf elements (16 bytes): `flags` u32 (0x01: the value is a bucket), `pos` u32, `ksize` u32,
///   `vsize` u32; key at the element's offset + `pos`, the value right after it;
/// - a bucket value is its header (`root` pgid u64, `sequence` u64); `root == 0` is an inline
///   bucket whose leaf page follows the header inside the value.
/// Integers are in the writing machine's byte order: detected from the magic.
public enum Bolt {
    public static let magic: UInt32 = 0xED0C_DAED
    public static let version: UInt32 = 2

    static let branchFlag: UInt16 = 0x01
    static let leafFlag: UInt16 = 0x02
    static let metaFlag: UInt16 = 0x04
    static let bucketLeafFlag: UInt32 = 0x01
    static let pageHeaderSize = 16
    static let elementSize = 16
    static let metaSize = 64

    /// Nesting of branch pages and buckets followed before giving up (a loop or absurd file).
    public static let maximumDepth = 64
    /// Entries returned for one bucket.
    public static let maximumEntries = 1 << 20

    /// The root bucket reference of a meta page, or a nested bucket's header.
    public struct BucketHeader: Sendable, Equatable {
        /// `root` @0: the bucket's root page, 0 for an inline bucket.
        public var root: UInt64
        /// `sequence` @8.
        public var sequence: UInt64
    }

    /// One meta page (bbolt's `meta` struct, after the 16-byte page header).
    public struct Meta: Sendable, Equatable {
        public var pageSize: UInt32
        public var flags: UInt32
        public var root: BucketHeader
        public var freelist: UInt64
        /// High-water mark: pages 0..<pageCount are in use.
        public var pageCount: UInt64
        public var txid: UInt64
        public var checksum: UInt64
        /// Which meta page it was read from (0 or 1).
        public var page: Int
    }

    /// One key of a bucket: a value, or a nested bucket.
    public struct Entry: Sendable {
        public var key: [UInt8]
        /// The value bytes (for a bucket, its raw header and inline page).
        public var value: [UInt8]
        public var isBucket: Bool

        public var keyString: String { String(decoding: key, as: UTF8.self) }
    }

    /// FNV-1a 64 (Go's hash/fnv New64a), the meta checksum.
    public static func fnv1a64(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            hash ^= UInt64(b)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
