import Codecs
import DiskImage

/// The logical-to-physical map of one compressed inode (COMPRESSED_FULL / COMPRESSED_COMPACT),
/// decoded as Linux `fs/erofs/zmap.c` and erofs-utils `lib/zmap.c` describe it.
///
/// The file is cut into logical clusters (lclusters) of 2^lclusterbits bytes, one index record
/// each. A HEAD1/HEAD2/PLAIN record starts an extent at `clusterofs` inside its lcluster and
/// names the physical cluster (pcluster) holding it; NONHEAD records continue the extent. An
/// extent ends where the next head starts (or at the end of the file) and decompresses from its
/// pcluster; a partially referenced (deduplicated) pcluster decodes only the extent's prefix.
final class ZMap {
    /// `z_erofs_map_header.h_advise` bits.
    struct Advise: OptionSet {
        let rawValue: UInt16
        static let compacted2B = Advise(rawValue: 0x1)       // compact layout: 2-byte packs
        static let extents = Advise(rawValue: 0x1)           // full layout: extent records (newer)
        static let bigPcluster1 = Advise(rawValue: 0x2)
        static let bigPcluster2 = Advise(rawValue: 0x4)
        static let inlinePcluster = Advise(rawValue: 0x8)    // ztailpacking
        static let interlacedPcluster = Advise(rawValue: 0x10)
        static let fragmentPcluster = Advise(rawValue: 0x20)
    }

    /// lcluster types (`Z_EROFS_LCLUSTER_TYPE_*`).
    enum LclusterType: UInt8 { case plain = 0, head1 = 1, nonhead = 2, head2 = 3 }

    /// One decoded lcluster index record.
    struct Lcluster {
        var lcn: UInt64
        var type: LclusterType
        /// Heads: where the extent starts inside the lcluster.
        var clusterOffset: UInt64
        /// Heads: the pcluster's first block.
        var block: UInt64 = 0
        /// NONHEAD: distance back to the head.
        var lookback: UInt64 = 0
        /// NONHEAD with CBLKCNT: the pcluster's block count.
        var compressedBlocks: UInt64 = 0
        var partialReference = false
        /// First byte after the index pack holding this record (where an inline pcluster follows).
        var nextPackOffset: UInt64 = 0
        var isHead: Bool { type != .nonhead }
    }

    enum Source {
        case compressed(position: UInt64, length: Int, algorithm: EROFS.Algorithm)
        case plain(position: UInt64, length: Int, interlaced: Bool)
        case fragment(offset: UInt64)
    }

    struct Extent {
        var logicalStart: UInt64
        var logicalEnd: UInt64
        var source: Source
        var partialReference: Bool
    }

    /// Largest pcluster (`Z_EROFS_PCLUSTER_MAX_SIZE`) and decoded extent accepted.
    static let maximumPhysicalLength: UInt64 = 1 << 20
    static let maximumLogicalLength: UInt64 = 16 << 20
    /// `Z_EROFS_LI_D0_CBLKCNT`, `Z_EROFS_LI_PARTIAL_REF`.
    static let cblkcnt: UInt32 = 1 << 11
    static let partialRef: UInt16 = 1 << 15

    let reader: EROFSReader
    let inode: EROFS.Inode
    let advise: Advise
    let algorithms: (UInt8, UInt8)
    let lclusterBits: UInt64
    let totalIndexes: UInt64
    /// Start of the 8-byte map header (the inline area rounded up to 8).
    let headerPosition: UInt64
    /// The whole file is a fragment of the packed inode (bit 7 of h_clusterbits).
    private(set) var fragmentOffset: UInt64 = 0
    private(set) var wholeFragment = false
    private var inlineSize: UInt64 = 0
    private var inlinePosition: UInt64 = 0
    private var tailHeadLcn: UInt64 = 0
    private var hasTail = false

    init(reader: EROFSReader, inode: EROFS.Inode) throws {
        self.reader = reader
        self.inode = inode
        headerPosition = (inode.inlineStart + 7) / 8 * 8
        let h = ByteCursor(try reader.read(at: headerPosition, count: 8, "erofs inode \(inode.nid) compression map header"), context: "z_erofs_map_header")
        // 0 h_fragmentoff (u32) | h_reserved1 (u16) + 2 h_idata_size (u16); 4 h_advise;
        // 6 h_algorithmtype (HEAD1 in bits 0-3, HEAD2 in 4-7); 7 h_clusterbits.
        let clusterBitsField = try h.u8(at: 7)
        if clusterBitsField & 0x80 != 0 {
            wholeFragment = true
            fragmentOffset = try h.u64le(at: 0) & ~(UInt64(1) << 63)
            advise = [.fragmentPcluster]
            algorithms = (0, 0)
            lclusterBits = reader.blockSizeBits
            totalIndexes = 0
            return
        }
        advise = Advise(rawValue: try h.u16le(at: 4))
        let algorithmField = try h.u8(at: 6)
        algorithms = (algorithmField & 0xF, algorithmField >> 4)
        lclusterBits = reader.blockSizeBits + UInt64(clusterBitsField & 0xF)
        guard lclusterBits <= 20 else {
            throw FWError.corrupt("erofs inode \(inode.nid): logical cluster size 2^\(lclusterBits) is too large")
        }
        totalIndexes = (inode.size >> lclusterBits) + (inode.size & ((1 << lclusterBits) - 1) == 0 ? 0 : 1)
        if inode.layout == .compressedFull, advise.contains(.extents) {
            throw FWError.unsupported("erofs inode \(inode.nid): compressed extent records (erofs-utils 1.9 format) are not supported")
        }
        if inode.layout == .compressedCompact, advise.contains(.bigPcluster1) != advise.contains(.bigPcluster2) {
            throw FWError.corrupt("erofs inode \(inode.nid): compact indexes with inconsistent big pcluster flags")
        }
        if advise.contains(.fragmentPcluster) {
            fragmentOffset = UInt64(try h.u32le(at: 0))
        } else if advise.contains(.inlinePcluster) {
            inlineSize = UInt64(try h.u16le(at: 2))
        }
        if inlineSize > 0 || advise.contains(.fragmentPcluster) {
            // Find the extent holding the last byte: its head lcluster is the tail extent's.
            let last = inode.size - 1
            let first = try load(last >> lclusterBits)
            if inlineSize > 0 { inlinePosition = first.nextPackOffset }
            let head = try headOf(first, endOffset: last & ((1 << lclusterBits) - 1))
            tailHeadLcn = head.lcn
            hasTail = true
            if advise.contains(.fragmentPcluster), inode.layout == .compressedFull {
                fragmentOffset |= head.block << 32
            }
        }
    }

    // MARK: Index records

    func load(_ lcn: UInt64) throws -> Lcluster {
        guard lcn < totalIndexes else {
            throw FWError.corrupt("erofs inode \(inode.nid): logical cluster \(lcn) is past the \(totalIndexes) indexes")
        }
        let record = inode.layout == .compressedFull ? try loadFull(lcn) : try loadCompact(lcn)
        if record.isHead, record.clusterOffset >= 1 << lclusterBits {
            throw FWError.corrupt("erofs inode \(inode.nid): cluster offset \(record.clusterOffset) of lcluster \(lcn) is outside it")
        }
        return record
    }

    /// `struct z_erofs_lcluster_index` (8 bytes each, after the header and 8 reserved bytes):
    /// 0 di_advise (type in bits 0-1, PARTIAL_REF bit 15), 2 di_clusterofs, 4 blkaddr or
    /// delta[0] (with CBLKCNT) + delta[1].
    private func loadFull(_ lcn: UInt64) throws -> Lcluster {
        let position = headerPosition + 16 + lcn * 8
        let c = ByteCursor(try reader.read(at: position, count: 8, "erofs inode \(inode.nid) lcluster \(lcn)"), context: "z_erofs_lcluster_index")
        let adviseField = try c.u16le(at: 0)
        guard let type = LclusterType(rawValue: UInt8(adviseField & 3)) else { throw FWError.corrupt("unreachable lcluster type") }
        var m = Lcluster(lcn: lcn, type: type, clusterOffset: 0, nextPackOffset: position + 8)
        if type == .nonhead {
            m.clusterOffset = 1 << lclusterBits
            var d0 = UInt32(try c.u16le(at: 4))
            if d0 & Self.cblkcnt != 0 {
                guard advise.contains(.bigPcluster1) || advise.contains(.bigPcluster2) else {
                    throw FWError.corrupt("erofs inode \(inode.nid): compressed block count in lcluster \(lcn) without big pclusters")
                }
                m.compressedBlocks = UInt64(d0 & ~Self.cblkcnt)
                d0 = 1
            }
            m.lookback = UInt64(d0)
        } else {
            m.partialReference = adviseField & Self.partialRef != 0
            m.clusterOffset = UInt64(try c.u16le(at: 2))
            m.block = UInt64(try c.u32le(at: 4))
        }
        return m
    }

    /// Compacted indexes: after the header, `compacted_4b_initial` 4-byte records up to a 32-byte
    /// boundary, then (with COMPACTED_2B) a multiple of 16 records in 32-byte packs of 16, then
    /// 4-byte records in 8-byte packs of 2. Each pack holds `encodebits`-bit fields (type in
    /// the two bits above `lobits`) and ends with the 32-bit block address of its first head.
    private func loadCompact(_ lcn: UInt64) throws -> Lcluster {
        let (pack, i) = try compactPack(of: lcn)
        let (lo, type) = pack.record(i)
        var m = Lcluster(lcn: lcn, type: type, clusterOffset: 0, nextPackOffset: pack.end)
        if type == .nonhead {
            m.clusterOffset = 1 << lclusterBits
            if lo & Self.cblkcnt != 0 {
                guard advise.contains(.bigPcluster1) else {
                    throw FWError.corrupt("erofs inode \(inode.nid): compressed block count in lcluster \(lcn) without big pclusters")
                }
                m.compressedBlocks = UInt64(lo & ~Self.cblkcnt)
                m.lookback = 1
            } else if i + 1 != pack.recordCount {
                m.lookback = UInt64(lo)
            } else {
                // The pack's last record keeps delta[1]; delta[0] comes from the one before.
                let previous = pack.record(i - 1)
                var d: UInt32 = 0
                if previous.type == .nonhead { d = previous.lo & Self.cblkcnt != 0 ? 1 : previous.lo }
                m.lookback = UInt64(d) + 1
            }
            return m
        }
        m.clusterOffset = UInt64(lo)
        // pblk = the pack's 32-bit base (its last 4 bytes) + nblk, as the kernel counts it.
        let blocks = try headBlocks(before: i, in: pack, lcn: lcn)
        m.block = try pack.baseBlock() + blocks
        return m
    }

    /// One pack of compacted index records, as read.
    private struct CompactPack {
        let bytes: [UInt8]
        /// Where the pack starts and ends in the image.
        let start: UInt64
        var end: UInt64 { start + UInt64(bytes.count) }
        /// Records in the pack (`vcnt`), bits per record (`encodebits`) and low bits of a record
        /// below its type (`lobits`).
        let recordCount: Int
        let encodeBits: Int
        let lowBits: Int

        /// Record `i`: its low bits (clusterofs, or a NONHEAD's delta) and its type.
        func record(_ i: Int) -> (lo: UInt32, type: LclusterType) {
            let bit = encodeBits * i
            var v: UInt32 = 0
            for k in 0..<4 where bit / 8 + k < bytes.count { v |= UInt32(bytes[bit / 8 + k]) << (8 * k) }
            v >>= UInt32(bit & 7)
            let lo = v & ((1 << UInt32(lowBits)) - 1)
            return (lo, LclusterType(rawValue: UInt8((v >> UInt32(lowBits)) & 3)) ?? .plain)
        }

        /// The 32-bit block address in the pack's last 4 bytes.
        func baseBlock() throws -> UInt64 {
            UInt64(try ByteCursor(bytes, context: "erofs index pack").u32le(at: bytes.count - 4))
        }
    }

    /// The pack holding lcluster `lcn`'s compacted record, read, and the record's index in it.
    private func compactPack(of lcn: UInt64) throws -> (pack: CompactPack, index: Int) {
        let base = headerPosition + 8
        let initial4B = ((32 - base % 32) / 4) & 7
        var compacted2B: UInt64 = 0
        if advise.contains(.compacted2B), initial4B < totalIndexes {
            compacted2B = (totalIndexes - initial4B) / 16 * 16
        }
        var position = base
        var shift: UInt64 = 2
        var index = lcn
        if index >= initial4B {
            position += initial4B * 4
            index -= initial4B
            if index < compacted2B {
                shift = 1
            } else {
                position += compacted2B * 2
                index -= compacted2B
            }
        }
        position += index << shift
        let vcnt: Int
        if shift == 2, lclusterBits <= 14 {
            vcnt = 2
        } else if shift == 1, lclusterBits <= 12 {
            vcnt = 16
        } else {
            throw FWError.unsupported("erofs inode \(inode.nid): compact indexes with \(1 << lclusterBits)-byte lclusters")
        }
        let packSize = UInt64(vcnt) << shift
        let packStart = position / packSize * packSize
        let bytes = try reader.read(at: packStart, count: Int(packSize), "erofs inode \(inode.nid) index pack of lcluster \(lcn)")
        let pack = CompactPack(bytes: bytes, start: packStart, recordCount: vcnt, encodeBits: (Int(packSize) - 4) * 8 / vcnt,
                               lowBits: max(Int(lclusterBits), 12))
        return (pack, Int((position - packStart) >> shift))
    }

    /// The blocks of the pclusters of the heads before record `i` of `pack` (plus one without
    /// big pclusters): the head's block is the pack's base block plus these.
    private func headBlocks(before index: Int, in pack: CompactPack, lcn: UInt64) throws -> UInt64 {
        var i = index
        var blocks: UInt64 = 0
        if !advise.contains(.bigPcluster1) {
            blocks = 1
            while i > 0 {
                i -= 1
                let (lo, type) = pack.record(i)
                if type == .nonhead { i -= Int(lo) }
                if i >= 0 { blocks += 1 }
            }
            return blocks
        }
        while i > 0 {
            i -= 1
            let (lo, type) = pack.record(i)
            if type == .nonhead {
                if lo & Self.cblkcnt != 0 {
                    i -= 1
                    blocks += UInt64(lo & ~Self.cblkcnt)
                    continue
                }
                guard lo > 1 else {
                    throw FWError.corrupt("erofs inode \(inode.nid): bad lookback distance in the index pack of lcluster \(lcn)")
                }
                i -= Int(lo) - 2
                continue
            }
            blocks += 1
        }
        return blocks
    }

    // MARK: Extents

    /// The head record of the extent that holds byte `endOffset` of lcluster `m.lcn`.
    private func headOf(_ m: Lcluster, endOffset: UInt64) throws -> Lcluster {
        var distance: UInt64
        if m.isHead {
            if endOffset >= m.clusterOffset { return m }
            guard m.lcn > 0 else { throw FWError.corrupt("erofs inode \(inode.nid): lcluster 0 does not start at offset 0") }
            distance = 1
        } else {
            distance = m.lookback
        }
        var lcn = m.lcn
        var steps: UInt64 = 0
        while true {
            guard distance > 0, lcn >= distance, steps <= totalIndexes else {
                throw FWError.corrupt("erofs inode \(inode.nid): bogus lookback distance \(distance) at lcluster \(lcn)")
            }
            steps += 1
            lcn -= distance
            let r = try load(lcn)
            if r.isHead { return r }
            distance = r.lookback
        }
    }

    func extent(containing offset: UInt64) throws -> Extent {
        let end = inode.size
        if wholeFragment || (advise.contains(.fragmentPcluster) && hasTail && tailHeadLcn == 0) {
            return Extent(logicalStart: 0, logicalEnd: end, source: .fragment(offset: fragmentOffset), partialReference: false)
        }
        let mask = (UInt64(1) << lclusterBits) - 1
        let first = try load(offset >> lclusterBits)
        let head = try headOf(first, endOffset: offset & mask)
        let start = head.lcn << lclusterBits | head.clusterOffset
        // The extent runs to the next head (or the end of the file).
        var stop = end
        var lcn = head.lcn + 1
        while lcn < totalIndexes {
            let r = try load(lcn)
            if r.isHead {
                stop = min(end, lcn << lclusterBits | r.clusterOffset)
                break
            }
            lcn += 1
        }
        guard start <= offset, offset < stop else {
            throw FWError.corrupt("erofs inode \(inode.nid): extent \(start)..<\(stop) does not hold offset \(offset)")
        }
        if hasTail, head.lcn == tailHeadLcn {
            if advise.contains(.fragmentPcluster) {
                return Extent(logicalStart: start, logicalEnd: stop, source: .fragment(offset: fragmentOffset), partialReference: false)
            }
            if inlineSize > 0 {
                guard inlinePosition % reader.blockSize + inlineSize <= reader.blockSize else {
                    throw FWError.corrupt("erofs inode \(inode.nid): inline pcluster of \(inlineSize) bytes crosses a block boundary")
                }
                return try extent(head, start, stop, position: inlinePosition, length: inlineSize)
            }
        }
        // Physical length: one block, or the CBLKCNT of the first NONHEAD for big pclusters.
        var blocks: UInt64 = 1
        let big = head.type == .head1 ? advise.contains(.bigPcluster1) : advise.contains(.bigPcluster2)
        if big, (head.lcn + 1) << lclusterBits < end {
            let next = try load(head.lcn + 1)
            if next.type == .nonhead {
                guard next.lookback == 1, next.compressedBlocks > 0 else {
                    throw FWError.corrupt("erofs inode \(inode.nid): no compressed block count after the head at lcluster \(head.lcn)")
                }
                blocks = next.compressedBlocks
            }
        }
        let (position, o1) = head.block.multipliedReportingOverflow(by: reader.blockSize)
        guard !o1 else { throw FWError.corrupt("erofs inode \(inode.nid): pcluster address overflows") }
        return try extent(head, start, stop, position: position, length: blocks << reader.blockSizeBits)
    }

    private func extent(_ head: Lcluster, _ start: UInt64, _ stop: UInt64, position: UInt64, length: UInt64) throws -> Extent {
        guard length <= Self.maximumPhysicalLength else {
            throw FWError(.limitExceeded, "erofs inode \(inode.nid): pcluster of \(length) bytes is over the \(Self.maximumPhysicalLength)-byte limit")
        }
        guard stop - start <= Self.maximumLogicalLength else {
            throw FWError(.limitExceeded, "erofs inode \(inode.nid): extent of \(stop - start) bytes is over the \(Self.maximumLogicalLength)-byte limit")
        }
        let source: Source
        switch head.type {
        case .plain:
            guard stop - start <= length else {
                throw FWError.corrupt("erofs inode \(inode.nid): uncompressed extent of \(stop - start) bytes is longer than its \(length)-byte pcluster")
            }
            source = .plain(position: position, length: Int(length), interlaced: advise.contains(.interlacedPcluster))
        case .head1, .head2:
            let id = head.type == .head1 ? algorithms.0 : algorithms.1
            guard let algorithm = EROFS.Algorithm(rawValue: id), reader.availableAlgorithms & (1 << UInt16(id)) != 0 else {
                throw FWError.corrupt("erofs inode \(inode.nid): compression algorithm \(id) is not declared by the superblock")
            }
            source = .compressed(position: position, length: Int(length), algorithm: algorithm)
        case .nonhead:
            throw FWError.corrupt("unreachable: a NONHEAD head")
        }
        return Extent(logicalStart: start, logicalEnd: stop, source: source, partialReference: head.partialReference)
    }

    // MARK: Decoding

    /// The extent's bytes, decompressed.
    func decode(_ extent: Extent) throws -> [UInt8] {
        let count = Int(extent.logicalEnd - extent.logicalStart)
        switch extent.source {
        case .fragment:
            throw FWError.corrupt("unreachable: fragments are read from the packed inode")
        case .plain(let position, let length, let interlaced):
            let input = try reader.read(at: position, count: length, "erofs inode \(inode.nid) pcluster at \(position)")
            if !interlaced { return Array(input[0..<count]) }
            guard length <= Int(reader.blockSize) else {
                throw FWError.corrupt("erofs inode \(inode.nid): interlaced pcluster larger than a block")
            }
            let skip = Int(extent.logicalStart & (reader.blockSize - 1))
            guard skip <= length else {
                throw FWError.corrupt("erofs inode \(inode.nid): interlaced offset \(skip) is past its \(length)-byte pcluster")
            }
            let right = min(length - skip, count)
            return Array(input[skip..<(skip + right)]) + Array(input[0..<(count - right)])
        case .compressed(let position, let length, let algorithm):
            let input = try reader.read(at: position, count: length, "erofs inode \(inode.nid) pcluster at \(position)")
            // 0PADDING: the compressed stream is right-aligned after zero bytes.
            guard let margin = input.firstIndex(where: { $0 != 0 }) else {
                throw FWError.corrupt("erofs inode \(inode.nid): pcluster at \(position) is all zeros")
            }
            var output = [UInt8](repeating: 0, count: count)
            let produced: Int
            do {
                produced = try input.withUnsafeBytes { raw in
                    try output.withUnsafeMutableBytes { out in
                        let src = UnsafeRawBufferPointer(rebasing: raw[margin...])
                        switch algorithm {
                        case .lz4:
                            return try LZ4().decompressPartial(src, into: out, targetSize: count)
                        case .lzma:
                            return try MicroLZMA(dictionarySize: reader.lzmaDictionarySize == 0 ? 8 << 20 : reader.lzmaDictionarySize)
                                .decompress(src, into: out, exactSize: !extent.partialReference)
                        case .zstd:
                            // One zstd frame per pcluster; a prefix (PARTIAL_REF) would need
                            // streaming decoding, which Codecs.Zstd does not offer.
                            guard !extent.partialReference else {
                                throw FWError.unsupported("erofs zstd pcluster referenced in part (dedupe) is not supported")
                            }
                            return try Zstd().decompress(src, into: out)
                        case .deflate:
                            throw FWError.unsupported("erofs deflate pclusters are not supported")
                        }
                    }
                }
            } catch var error as FWError {
                error.message = "erofs inode \(inode.nid) pcluster at \(position) (\(length) bytes) for \(extent.logicalStart)..<\(extent.logicalEnd): \(error.message)"
                throw error
            }
            guard produced == count else {
                throw FWError.corrupt("erofs inode \(inode.nid): pcluster at \(position) decoded to \(produced) of \(count) bytes")
            }
            return output
        }
    }
}

