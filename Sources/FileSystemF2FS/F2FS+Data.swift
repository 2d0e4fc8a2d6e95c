import Codecs
import DiskImage
import FileSystems

/// File block index -> block address through an inode's node tree (`get_node_path`): the
/// inode's own addresses, two direct nodes, two indirect nodes, one double-indirect node. A
/// node id of 0 anywhere on the path is a hole.
struct BlockMap {
    let reader: F2FSReader
    let inode: F2FS.Inode

    /// The address of block `index` (`NULL_ADDR`, `NEW_ADDR` and `COMPRESS_ADDR` included).
    func address(_ index: UInt64) throws -> UInt32 {
        let direct = UInt64(inode.addressCount)
        if index < direct { return try inode.address(Int(index)) }
        var i = index - direct
        let perBlock = UInt64(inode.addressesPerBlock)
        let nids = UInt64(F2FS.nidsPerBlock)
        for k in 0..<2 {
            if i < perBlock { return try entry(inode.nids[k], Int(i)) }
            i -= perBlock
        }
        for k in 2..<4 {
            if i < perBlock * nids { return try entry(try entry(inode.nids[k], Int(i / perBlock)), Int(i % perBlock)) }
            i -= perBlock * nids
        }
        guard i < perBlock * nids * nids else {
            throw FWError.corrupt("f2fs inode \(inode.nid): block \(index) is past the largest file the node tree can address")
        }
        let middle = try entry(inode.nids[4], Int(i / (perBlock * nids)))
        return try entry(try entry(middle, Int((i / perBlock) % nids)), Int(i % perBlock))
    }

    /// Word `index` of node `nid` (an address in a direct node, a node id in an indirect one);
    /// 0 for node id 0.
    private func entry(_ nid: UInt32, _ index: Int) throws -> UInt32 {
        guard nid != 0 else { return 0 }
        let block = try reader.node(nid, owner: inode.nid)
        return try ByteCursor(block, context: "f2fs node \(nid)").u32le(at: 4 * index)
    }

    /// Calls `body` with every mapped block (a real address, not a hole) below `limit`, in
    /// order, walking the node tree once and skipping whole absent nodes: directories use it
    /// to visit every dentry block of every hash level.
    func forEachMappedBlock(below limit: UInt64, _ body: (UInt64, UInt32) throws -> Void) throws {
        let direct = min(UInt64(inode.addressCount), limit)
        for index in 0..<direct {
            let address = try inode.address(Int(index))
            if Self.isMapped(address) { try body(index, address) }
        }
        var base = UInt64(inode.addressCount)
        let levels = [0, 0, 1, 1, 2]
        for (k, nid) in inode.nids.enumerated() where base < limit {
            let span = UInt64(inode.addressesPerBlock) * Self.power(UInt64(F2FS.nidsPerBlock), levels[k])
            if nid != 0 { try walk(nid, level: levels[k], base: base, limit: limit, body) }
            base += span
        }
    }

    private func walk(_ nid: UInt32, level: Int, base: UInt64, limit: UInt64, _ body: (UInt64, UInt32) throws -> Void) throws {
        let c = ByteCursor(try reader.node(nid, owner: inode.nid), context: "f2fs node \(nid)")
        if level == 0 {
            for k in 0..<inode.addressesPerBlock where base + UInt64(k) < limit {
                let address = try c.u32le(at: 4 * k)
                if Self.isMapped(address) { try body(base + UInt64(k), address) }
            }
            return
        }
        let span = UInt64(inode.addressesPerBlock) * Self.power(UInt64(F2FS.nidsPerBlock), level - 1)
        for k in 0..<F2FS.nidsPerBlock {
            let childBase = base + UInt64(k) * span
            guard childBase < limit else { break }
            let child = try c.u32le(at: 4 * k)
            if child != 0 { try walk(child, level: level - 1, base: childBase, limit: limit, body) }
        }
    }

    static func isMapped(_ address: UInt32) -> Bool {
        address != F2FS.nullAddress && address != F2FS.newAddress && address != F2FS.compressAddress
    }

    private static func power(_ base: UInt64, _ exponent: Int) -> UInt64 {
        (0..<exponent).reduce(1) { acc, _ in acc * base }
    }
}

/// Sequential reads over one file: inline data, mapped blocks (holes read as zeros), or
/// compressed clusters.
final class F2FSFile: FileContents {
    let reader: F2FSReader
    let inode: F2FS.Inode
    let map: BlockMap
    let size: UInt64
    private var position: UInt64 = 0
    /// The decoded cluster last read (compressed files).
    private var cluster: (index: UInt64, bytes: [UInt8])?

    init(reader: F2FSReader, inode: F2FS.Inode) throws {
        self.reader = reader
        self.inode = inode
        self.map = BlockMap(reader: reader, inode: inode)
        self.size = inode.size
        if inode.usesInlineData, inode.size > UInt64(inode.inlineCapacity) {
            throw FWError.corrupt("f2fs inode \(inode.nid): inline data of \(inode.size) bytes is larger than its \(inode.inlineCapacity)-byte inline area")
        }
        if inode.isCompressed, !inode.usesInlineData {
            guard let algorithm = F2FS.Algorithm(rawValue: inode.compressionAlgorithm) else {
                throw FWError.corrupt("f2fs inode \(inode.nid): unknown compression algorithm \(inode.compressionAlgorithm)")
            }
            guard algorithm != .lzoRLE else {
                throw FWError.unsupported("f2fs inode \(inode.nid): lzo-rle compressed clusters are not supported")
            }
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        do {
            while done < buffer.count, position < size {
                let room = UnsafeMutableRawBufferPointer(rebasing: buffer[done...])
                let want = Int(min(UInt64(room.count), size - position))
                let n: Int
                if inode.usesInlineData {
                    n = try readInline(into: room, want)
                } else if inode.isCompressed {
                    n = try readCompressed(into: room, want)
                } else {
                    n = try readBlocks(into: room, want)
                }
                guard n > 0 else { throw FWError.corrupt("f2fs inode \(inode.nid): no data at offset \(position)") }
                done += n
                position += UInt64(n)
            }
        } catch let error as FWError {
            throw error.within(reader.place)
        }
        return done
    }

    private func readInline(into buffer: UnsafeMutableRawBufferPointer, _ want: Int) throws -> Int {
        let start = inode.inlineOffset + Int(position)
        inode.block[start..<(start + want)].withUnsafeBytes { buffer.copyMemory(from: $0) }
        return want
    }

    /// Reads from block `position >> 12` on, joining physically contiguous blocks into one read.
    private func readBlocks(into buffer: UnsafeMutableRawBufferPointer, _ want: Int) throws -> Int {
        let blockSize = UInt64(F2FS.blockSize)
        let index = position / blockSize
        let offset = Int(position % blockSize)
        let address = try map.address(index)
        guard BlockMap.isMapped(address) else {
            let n = min(want, F2FS.blockSize - offset)
            UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]).initializeMemory(as: UInt8.self, repeating: 0)
            return n
        }
        try checkData(address, index)
        let needed = (offset + want + F2FS.blockSize - 1) / F2FS.blockSize
        var run = 1
        while run < needed, run < 256, try map.address(index + UInt64(run)) == address &+ UInt32(run), reader.isInMainArea(address &+ UInt32(run)) {
            run += 1
        }
        let n = min(want, run * F2FS.blockSize - offset)
        try reader.source.readExactly(at: (UInt64(address) << F2FS.blockSizeBits) + UInt64(offset),
                                      into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
        return n
    }

    private func checkData(_ address: UInt32, _ index: UInt64) throws {
        guard reader.isInMainArea(address) else {
            throw FWError.corrupt("f2fs inode \(inode.nid): block \(index) points outside the main area (block \(address))")
        }
    }

    private func readCompressed(into buffer: UnsafeMutableRawBufferPointer, _ want: Int) throws -> Int {
        let clusterBytes = UInt64(inode.clusterBlocks * F2FS.blockSize)
        let index = position / clusterBytes
        if cluster?.index != index { cluster = (index, try decodeCluster(index)) }
        guard let bytes = cluster?.bytes else { return 0 }
        let offset = Int(position % clusterBytes)
        let n = min(want, bytes.count - offset)
        bytes[offset..<(offset + n)].withUnsafeBytes { buffer.copyMemory(from: $0) }
        return n
    }

    /// One cluster's bytes (`f2fs_read_multi_pages`, `f2fs_decompress_cluster`): when its first
    /// address is `COMPRESS_ADDR`, the valid addresses after it hold a `compress_data` header
    /// (le32 `clen`, le32 `chksum`, 16 reserved bytes) and `clen` compressed bytes that decode to
    /// exactly one cluster; otherwise its blocks are plain (holes as zeros).
    private func decodeCluster(_ index: UInt64) throws -> [UInt8] {
        let blocks = inode.clusterBlocks
        let first = index * UInt64(blocks)
        let addresses = try (0..<blocks).map { try map.address(first + UInt64($0)) }
        var output = [UInt8](repeating: 0, count: blocks * F2FS.blockSize)
        guard addresses[0] == F2FS.compressAddress else {
            for (k, address) in addresses.enumerated() where BlockMap.isMapped(address) {
                try checkData(address, first + UInt64(k))
                try output.withUnsafeMutableBytes {
                    try reader.source.readExactly(at: UInt64(address) << F2FS.blockSizeBits,
                                                  into: UnsafeMutableRawBufferPointer(rebasing: $0[(k * F2FS.blockSize)..<((k + 1) * F2FS.blockSize)]))
                }
            }
            return output
        }
        var compressed: [UInt8] = []
        for (k, address) in addresses.enumerated().dropFirst() {
            guard BlockMap.isMapped(address) else { break }
            try checkData(address, first + UInt64(k))
            compressed += try F2FSReader.readBlock(reader.source, address, "f2fs inode \(inode.nid) compressed block")
        }
        let header = ByteCursor(compressed, context: "f2fs inode \(inode.nid) cluster \(index)")
        let length = Int(try header.u32le(at: 0))
        guard length > 0, length <= compressed.count - 24 else {
            throw FWError.corrupt("f2fs inode \(inode.nid) cluster \(index): compressed length \(length) does not fit its \(compressed.count / F2FS.blockSize) block(s)")
        }
        let decoder: any Decompressor
        switch F2FS.Algorithm(rawValue: inode.compressionAlgorithm) {
        case .lzo?: decoder = LZO()
        case .lz4?: decoder = LZ4()
        case .zstd?: decoder = Zstd()
        default: throw FWError.unsupported("f2fs inode \(inode.nid): compression algorithm \(inode.compressionAlgorithm) is not supported")
        }
        let produced = try compressed[24..<(24 + length)].withUnsafeBytes { input in
            try output.withUnsafeMutableBytes { try decoder.decompress(input, into: $0) }
        }
        guard produced == output.count else {
            throw FWError.corrupt("f2fs inode \(inode.nid) cluster \(index): \(decoder.name) data decodes to \(produced) bytes, not \(output.count)")
        }
        return output
    }
}
