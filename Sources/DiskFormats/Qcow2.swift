import Codecs
import DiskImage

/// An internal snapshot of a qcow2 image (`qemu-img snapshot -l`).
public struct DiskImageSnapshot: Sendable, Equatable {
    public var id: String
    public var name: String
    /// Virtual disk size at the snapshot (the header's size when the entry does not say).
    public var virtualSize: UInt64
    /// Seconds since the epoch when the snapshot was taken.
    public var date: UInt32
}

/// The internal snapshots of an image opened with `openDiskImage` (empty for other formats).
public func diskImageSnapshots(of source: any ByteSource) -> [DiskImageSnapshot] {
    if let q = source as? Qcow2Image { return q.snapshots }
    if let w = source as? WrappedSource { return diskImageSnapshots(of: w.inner) }
    return []
}

/// The qcow2 header (QEMU docs/interop/qcow2.txt), all fields big-endian.
struct Qcow2Header {
    var version: UInt32              // 4
    var backingFileOffset: UInt64    // 8
    var backingFileSize: UInt32      // 16
    var clusterBits: UInt32          // 20
    var size: UInt64                 // 24: virtual size in bytes
    var cryptMethod: UInt32          // 32
    var l1Size: UInt32               // 36: entries
    var l1TableOffset: UInt64        // 40
    var snapshotCount: UInt32        // 60
    var snapshotsOffset: UInt64      // 64
    var incompatibleFeatures: UInt64 = 0 // 72 (v3)
    var headerLength: UInt32 = 72    // 100 (v3)
    var compressionType: UInt8 = 0   // 104 (v3, when header_length > 104)

    static let dirty: UInt64 = 1 << 0
    static let corruptBit: UInt64 = 1 << 1
    static let externalDataFile: UInt64 = 1 << 2
    static let compressionTypeBit: UInt64 = 1 << 3
    static let extendedL2: UInt64 = 1 << 4

    init(_ c: ByteCursor) throws {
        version = try c.u32be(at: 4)
        backingFileOffset = try c.u64be(at: 8)
        backingFileSize = try c.u32be(at: 16)
        clusterBits = try c.u32be(at: 20)
        size = try c.u64be(at: 24)
        cryptMethod = try c.u32be(at: 32)
        l1Size = try c.u32be(at: 36)
        l1TableOffset = try c.u64be(at: 40)
        snapshotCount = try c.u32be(at: 60)
        snapshotsOffset = try c.u64be(at: 64)
        if version >= 3 {
            incompatibleFeatures = try c.u64be(at: 72)
            headerLength = try c.u32be(at: 100)
            if headerLength > 104 { compressionType = try c.u8(at: 104) }
        }
    }
}

/// A qcow2 v2/v3 image: L1/L2 tables (standard or extended with subclusters), zero and
/// unallocated clusters, deflate and zstd compressed clusters, backing files, internal snapshots.
final class Qcow2Image: DiskContainerSource {
    let file: any ByteSource
    let name: String
    let size: UInt64
    let format = "qcow2"
    let snapshots: [DiskImageSnapshot]

    private let clusterBits: Int
    private let clusterSize: Int
    private let l1: [UInt64]
    private let l2Bits: Int
    private let entryBytes: Int
    private let extendedL2: Bool
    private let zstd: Bool
    private let version: UInt32
    private let backing: (any ByteSource)?
    private let tables: ClusterCache
    private let clusters: ClusterCache

    static let offsetMask: UInt64 = 0x00FF_FFFF_FFFF_FE00

    init(_ file: any ByteSource, directory: String, opener: ImageOpener, backingDepth: Int, chain: [String]) throws {
        self.file = file
        self.name = file.name
        let disk = file.name
        let h = try Self.checkedHeader(file)
        zstd = h.compressionType == 1
        version = h.version
        clusterBits = Int(h.clusterBits)
        clusterSize = 1 << clusterBits
        extendedL2 = h.incompatibleFeatures & Qcow2Header.extendedL2 != 0
        entryBytes = extendedL2 ? 16 : 8
        l2Bits = clusterBits - (extendedL2 ? 4 : 3)
        tables = ClusterCache(entrySize: clusterSize, budget: 16 << 20)
        clusters = ClusterCache(entrySize: clusterSize, budget: 32 << 20)

        let backingFormat = try Self.backingFormat(file, header: h, clusterSize: clusterSize)

        let snaps = try Self.snapshots(file, header: h)
        snapshots = snaps.map(\.0)

        var l1Offset = h.l1TableOffset, l1Count = h.l1Size, virtualSize = h.size
        if let wanted = opener.options.snapshot {
            guard let s = snaps.first(where: { $0.0.name == wanted }) ?? snaps.first(where: { $0.0.id == wanted }) else {
                throw FWError(.notFound, "qcow2: no internal snapshot named \"\(wanted)\" (has: \(snapshots.map { "\($0.id) \($0.name)" }.joined(separator: ", ")))", disk: disk)
            }
            (l1Offset, l1Count, virtualSize) = (s.1, s.2, s.0.virtualSize)
        }
        size = virtualSize

        // L1 table: big enough for the virtual size, inside the file.
        let bytesPerL1 = UInt64(1) << UInt64(clusterBits + l2Bits)
        let needed = virtualSize / bytesPerL1 + (virtualSize % bytesPerL1 == 0 ? 0 : 1)
        guard UInt64(l1Count) >= needed else {
            throw FWError(.corrupt, "qcow2 L1 table at offset \(l1Offset): \(l1Count) entries cannot map \(virtualSize) bytes", disk: disk)
        }
        guard l1Count <= 32 << 20 / 8 else {
            throw FWError(.limitExceeded, "qcow2 L1 table at offset \(l1Offset): \(l1Count) entries", disk: disk)
        }
        let l1Bytes = try file.record(at: l1Offset, count: Int(l1Count) * 8, "qcow2 L1 table")
        l1 = try (0..<Int(l1Count)).map { try l1Bytes.u64be(at: $0 * 8) }

        // Backing file: relative to the image's folder, then --backing-dir.
        if h.backingFileOffset != 0 {
            guard h.backingFileSize > 0, h.backingFileSize <= 1023 else {
                throw FWError(.corrupt, "qcow2 header at offset 16: backing file name of \(h.backingFileSize) bytes", disk: disk)
            }
            let reference = String(decoding: try file.bytes(at: h.backingFileOffset, count: Int(h.backingFileSize)), as: UTF8.self)
            guard backingDepth + 1 < ImageOpener.maximumBackingDepth else {
                throw FWError(.limitExceeded, "qcow2: backing chain is more than \(ImageOpener.maximumBackingDepth) files deep (at \"\(reference)\")", disk: disk)
            }
            let path = try opener.resolve(reference, directory: directory, what: "backing file", disk: disk, useBackingDir: true)
            let canonical = canonicalPath(path)
            guard !chain.contains(canonical) else {
                throw FWError(.corrupt, "qcow2: backing chain loops: \(reference) is already in the chain \(chain.joined(separator: " -> "))", disk: disk)
            }
            var inner = opener.options
            inner.snapshot = nil
            let backingOpener = ImageOpener(options: inner, files: opener.files)
            if backingFormat == "raw" {
                backing = try FileSource(path: path)
            } else {
                backing = try backingOpener.open(path: path, backingDepth: backingDepth + 1, chain: chain)
            }
        } else {
            backing = nil
        }
    }

    /// The header, with every field this reader depends on checked (version, cluster size,
    /// encryption, incompatible features, header length, compression type).
    private static func checkedHeader(_ file: any ByteSource) throws -> Qcow2Header {
        let disk = file.name
        let h = try Qcow2Header(file.record(at: 0, count: 112, "qcow2 header"))
        guard h.version == 2 || h.version == 3 else {
            throw FWError(.unsupported, "qcow2 version \(h.version) is not supported (2 and 3 are)", disk: disk)
        }
        guard (9...21).contains(h.clusterBits) else {
            throw FWError(.corrupt, "qcow2 header at offset 20: cluster_bits \(h.clusterBits) is outside 9...21", disk: disk)
        }
        guard h.cryptMethod == 0 else {
            throw FWError(.unsupported, "qcow2: encrypted images (crypt_method \(h.cryptMethod)) are not supported", disk: disk)
        }
        let known = Qcow2Header.dirty | Qcow2Header.corruptBit | Qcow2Header.externalDataFile
            | Qcow2Header.compressionTypeBit | Qcow2Header.extendedL2
        if h.incompatibleFeatures & Qcow2Header.externalDataFile != 0 {
            throw FWError(.unsupported, "qcow2: images with an external data file are not supported", disk: disk)
        }
        guard h.incompatibleFeatures & ~known == 0 else {
            throw FWError(.unsupported, "qcow2: unknown incompatible features 0x\(String(h.incompatibleFeatures & ~known, radix: 16))", disk: disk)
        }
        if h.version >= 3 {
            guard h.headerLength >= 104 else {
                throw FWError(.corrupt, "qcow2 header at offset 100: header_length \(h.headerLength) is invalid", disk: disk)
            }
        }
        switch h.compressionType {
        case 0, 1: break
        default: throw FWError(.unsupported, "qcow2 header at offset 104: compression type \(h.compressionType) is not supported (0 deflate, 1 zstd)", disk: disk)
        }
        return h
    }

    /// The backing file's format from the header extensions (nil: probe it).
    private static func backingFormat(_ file: any ByteSource, header h: Qcow2Header, clusterSize: Int) throws -> String? {
        let disk = file.name
        var backingFormat: String? = nil
        var extOffset = UInt64(h.version >= 3 ? h.headerLength : 72)
        for _ in 0..<1024 {
            guard extOffset + 8 <= UInt64(clusterSize), extOffset + 8 <= file.size else { break }
            let e = try file.record(at: extOffset, count: 8, "qcow2 header extension")
            let type = try e.u32be(at: 0), length = UInt64(try e.u32be(at: 4))
            if type == 0 { break }
            guard extOffset + 8 + length <= UInt64(clusterSize) else {
                throw FWError(.corrupt, "qcow2 header extension at offset \(extOffset): length \(length) runs past the first cluster", disk: disk)
            }
            if type == 0xE279_2ACA {
                backingFormat = String(decoding: try file.bytes(at: extOffset + 8, count: Int(length)), as: UTF8.self)
            } else if type == 0x0537_BE77 {
                throw FWError(.unsupported, "qcow2: encrypted images (LUKS) are not supported", disk: disk)
            }
            extOffset += 8 + (length + 7) / 8 * 8
        }

        return backingFormat
    }

    /// The internal snapshots: each one's description, L1 table offset and L1 entry count.
    private static func snapshots(_ file: any ByteSource, header h: Qcow2Header) throws -> [(DiskImageSnapshot, UInt64, UInt32)] {
        let disk = file.name
        guard h.snapshotCount <= 65536 else {
            throw FWError(.limitExceeded, "qcow2 header at offset 60: \(h.snapshotCount) snapshots", disk: disk)
        }
        var snaps: [(DiskImageSnapshot, UInt64, UInt32)] = []
        var snapOffset = h.snapshotsOffset
        for i in 0..<Int(h.snapshotCount) {
            let s = try file.record(at: snapOffset, count: 40, "qcow2 snapshot \(i + 1) header")
            let l1Offset = try s.u64be(at: 0), l1Size = try s.u32be(at: 8)
            let idLength = Int(try s.u16be(at: 12)), nameLength = Int(try s.u16be(at: 14))
            let date = try s.u32be(at: 16)
            let extraLength = Int(try s.u32be(at: 36))
            guard extraLength <= 1024 else {
                throw FWError(.corrupt, "qcow2 snapshot at offset \(snapOffset): extra data of \(extraLength) bytes", disk: disk)
            }
            let rest = try file.record(at: snapOffset + 40, count: extraLength + idLength + nameLength, "qcow2 snapshot \(i + 1)")
            var virtualSize = h.size
            if extraLength >= 16 { virtualSize = try rest.u64be(at: 8) }
            let id = String(decoding: try rest.slice(at: extraLength, count: idLength), as: UTF8.self)
            let sname = String(decoding: try rest.slice(at: extraLength + idLength, count: nameLength), as: UTF8.self)
            snaps.append((DiskImageSnapshot(id: id, name: sname, virtualSize: virtualSize, date: date), l1Offset, l1Size))
            snapOffset += (40 + UInt64(extraLength + idLength + nameLength) + 7) / 8 * 8
        }
        return snaps
    }

    private enum Mapping {
        case unallocated
        case zero
        case data(UInt64)
        case compressed(UInt64, Int)
        /// Extended L2: host cluster (0 if none), allocation and zero bitmaps.
        case subclusters(UInt64, UInt32, UInt32)
    }

    private func mapping(ofCluster vcluster: UInt64) throws -> Mapping {
        let l1Index = vcluster >> UInt64(l2Bits)
        guard l1Index < UInt64(l1.count) else { return .unallocated }
        let l1Entry = l1[Int(l1Index)]
        let l2Offset = l1Entry & Self.offsetMask
        if l2Offset == 0 { return .unallocated }
        guard l2Offset & UInt64(clusterSize - 1) == 0 else {
            throw FWError(.corrupt, "qcow2 L1 entry \(l1Index): L2 table offset \(l2Offset) is not cluster aligned", disk: name)
        }
        let table = try tables.value(l2Offset) {
            try file.bytes(at: l2Offset, count: clusterSize)
        }
        let index = Int(vcluster & ((1 << UInt64(l2Bits)) - 1)) * entryBytes
        // The table is exactly one cluster and index + entryBytes <= clusterSize by construction;
        // read the big-endian entries directly (this runs for every cluster read).
        func be64(_ at: Int) -> UInt64 {
            var v: UInt64 = 0
            for i in 0..<8 { v = v << 8 | UInt64(table[at + i]) }
            return v
        }
        guard table.count == clusterSize else {
            throw FWError(.corrupt, "qcow2 L2 table at offset \(l2Offset) is short", disk: name)
        }
        let entry = be64(index)
        if entry & (1 << 62) != 0 {
            let x = UInt64(62 - (clusterBits - 8))
            let host = entry & ((1 << x) - 1)
            let sectors = (entry >> x) & ((1 << UInt64(clusterBits - 8)) - 1) + 1
            let length = sectors * 512 - (host & 511)
            return .compressed(host, Int(length))
        }
        let host = entry & Self.offsetMask
        guard host & UInt64(clusterSize - 1) == 0 else {
            throw FWError(.corrupt, "qcow2 L2 table at offset \(l2Offset), entry \(index / entryBytes): data offset \(host) is not cluster aligned", disk: name)
        }
        if extendedL2 {
            let bitmap = be64(index + 8)
            let alloc = UInt32(truncatingIfNeeded: bitmap), zero = UInt32(truncatingIfNeeded: bitmap >> 32)
            guard alloc & zero == 0 else {
                throw FWError(.corrupt, "qcow2 L2 table at offset \(l2Offset), entry \(index / entryBytes): subclusters both allocated and zero", disk: name)
            }
            guard host != 0 || alloc == 0 else {
                throw FWError(.corrupt, "qcow2 L2 table at offset \(l2Offset), entry \(index / entryBytes): allocated subclusters without a data cluster", disk: name)
            }
            return .subclusters(host, alloc, zero)
        }
        if version >= 3, entry & 1 != 0 { return .zero }
        return host == 0 ? .unallocated : .data(host)
    }

    private func decompressed(host: UInt64, length: Int) throws -> [UInt8] {
        try clusters.value(host) {
            guard host < file.size else {
                throw FWError(.corrupt, "qcow2 compressed cluster at offset \(host) is past the end of the file (\(file.size) bytes)", disk: name)
            }
            let available = Int(min(UInt64(length), file.size - host))
            let input = try file.bytes(at: host, count: available)
            var output = [UInt8](repeating: 0, count: clusterSize)
            let produced: Int
            do {
                produced = try input.withUnsafeBytes { inp in
                    try output.withUnsafeMutableBytes { out in
                        zstd ? try ClusterCodec.zstd(inp, into: out) : try ClusterCodec.inflate(inp, into: out, windowBits: -15)
                    }
                }
            } catch let error as FWError {
                throw FWError(error.code, "qcow2 compressed cluster at offset \(host) (\(length) bytes): \(error.message)", disk: name, cause: error)
            }
            guard produced == clusterSize else {
                throw FWError(.corrupt, "qcow2 compressed cluster at offset \(host) decompresses to \(produced) bytes, not \(clusterSize)", disk: name)
            }
            return output
        }
    }

    private func readBacking(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard let backing, offset < backing.size else { return zeroFill(buffer) }
        let n = Int(min(UInt64(buffer.count), backing.size - offset))
        try backing.readExactly(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
        if n < buffer.count { zeroFill(UnsafeMutableRawBufferPointer(rebasing: buffer[n...])) }
    }

    private func readHost(_ host: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        do {
            try file.readExactly(at: host, into: buffer)
        } catch let error as FWError {
            throw FWError(error.code, "qcow2 data cluster at offset \(host & ~UInt64(clusterSize - 1)): \(error.message)", disk: name, cause: error)
        }
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try readInPieces(size: size, at: offset, into: buffer) { pos, rest in
            let vcluster = pos >> UInt64(clusterBits)
            let within = Int(pos & UInt64(clusterSize - 1))
            var n = min(rest.count, clusterSize - within)
            let out = { (count: Int) in UnsafeMutableRawBufferPointer(rebasing: rest[0..<count]) }
            switch try mapping(ofCluster: vcluster) {
            case .unallocated:
                try readBacking(at: pos, into: out(n))
            case .zero:
                zeroFill(out(n))
            case .data(let host):
                try readHost(host + UInt64(within), into: out(n))
            case .compressed(let host, let length):
                let cluster = try decompressed(host: host, length: length)
                cluster.withUnsafeBytes { src in
                    out(n).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[within..<(within + n)]))
                }
            case .subclusters(let host, let alloc, let zero):
                let subSize = clusterSize / 32
                let sub = within / subSize
                n = min(n, (sub + 1) * subSize - within)
                if zero & (1 << UInt32(sub)) != 0 {
                    zeroFill(out(n))
                } else if alloc & (1 << UInt32(sub)) != 0 {
                    try readHost(host + UInt64(within), into: out(n))
                } else {
                    try readBacking(at: pos, into: out(n))
                }
            }
            return n
        }
    }
}
