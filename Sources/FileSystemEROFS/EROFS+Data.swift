import DiskImage

/// Random-access reads of one inode's data, whatever its layout.
final class DataReader {
    let reader: EROFSReader
    let inode: EROFS.Inode
    private var zmap: ZMap?
    /// Recently decoded compressed extents (logical start, bytes), most recent first. A file read
    /// front to back needs one; the packed inode keeps several, since the files whose fragments
    /// it holds are not visited in the order they were packed.
    private var cache: [(start: UInt64, bytes: [UInt8])] = []
    private var cachedBytes = 0
    private let cacheEntries: Int
    /// Bound on the bytes the cache holds (a single extent may exceed it and is then kept alone).
    static let cacheByteLimit = 64 << 20

    init(reader: EROFSReader, inode: EROFS.Inode, cacheEntries: Int = 1) throws {
        self.reader = reader
        self.inode = inode
        self.cacheEntries = max(1, cacheEntries)
        if inode.isCompressed, inode.size > 0 {
            zmap = try ZMap(reader: reader, inode: inode)
        }
    }

    /// Reads up to `buffer.count` bytes at `offset` (fewer at the end of a mapped piece; 0 only
    /// at or past the end of the file).
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < inode.size, buffer.count > 0 else { return 0 }
        let want = Int(min(UInt64(buffer.count), inode.size - offset))
        switch inode.layout {
        case .flatPlain:
            if inode.union == EROFS.nullAddress32 { return zero(buffer, want) }
            return try physical(block: inode.union, offset: offset, buffer: buffer, count: want)
        case .flatInline:
            let blockSize = reader.blockSize
            let blocks = inode.size / blockSize + (inode.size % blockSize == 0 ? 0 : 1)
            let tailStart = (blocks - 1) * blockSize
            if offset < tailStart {
                return try physical(block: inode.union, offset: offset, buffer: buffer, count: Int(min(UInt64(want), tailStart - offset)))
            }
            let tailLength = inode.size - tailStart
            guard inode.inlineStart % blockSize + tailLength <= blockSize else {
                throw FWError.corrupt("erofs inode \(inode.nid): inline tail of \(tailLength) bytes crosses a block boundary")
            }
            let position = inode.inlineStart + (offset - tailStart)
            try reader.source.readExactly(at: position, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            return want
        case .chunkBased:
            return try chunk(offset: offset, buffer: buffer, count: want)
        case .compressedFull, .compressedCompact:
            guard let zmap else { return 0 }
            return try compressed(zmap, offset: offset, buffer: buffer, count: want)
        }
    }

    private func zero(_ buffer: UnsafeMutableRawBufferPointer, _ count: Int) -> Int {
        UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]).initializeMemory(as: UInt8.self, repeating: 0)
        return count
    }

    /// Contiguous data from block `block`, `offset` bytes in.
    private func physical(block: UInt32, offset: UInt64, buffer: UnsafeMutableRawBufferPointer, count: Int) throws -> Int {
        let (base, o1) = UInt64(block).multipliedReportingOverflow(by: reader.blockSize)
        let (position, o2) = base.addingReportingOverflow(offset)
        guard !o1, !o2 else { throw FWError.corrupt("erofs inode \(inode.nid): data address overflows") }
        do {
            try reader.source.readExactly(at: position, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
        } catch var error as FWError {
            error.message = "erofs inode \(inode.nid) data at block \(block): \(error.message)"
            throw error
        }
        return count
    }

    /// CHUNK_BASED: `i_u` holds the chunk format (bits 0-4: chunk size bits above the block
    /// size; 0x20: 8-byte `erofs_inode_chunk_index` records, else 4-byte block map entries),
    /// the table sits after the xattrs aligned to its record size.
    private func chunk(offset: UInt64, buffer: UnsafeMutableRawBufferPointer, count: Int) throws -> Int {
        let format = inode.union & 0xFFFF
        guard format & ~UInt32(0x3F) == 0 else {
            throw FWError.unsupported("erofs inode \(inode.nid): chunk format 0x\(String(format, radix: 16)) not supported")
        }
        let chunkBits = reader.blockSizeBits + UInt64(format & 0x1F)
        guard chunkBits <= 48 else { throw FWError.corrupt("erofs inode \(inode.nid): chunk size 2^\(chunkBits) is too large") }
        let indexes = format & 0x20 != 0
        let unit: UInt64 = indexes ? 8 : 4
        let chunkNumber = offset >> chunkBits
        let table = (inode.inlineStart + unit - 1) / unit * unit
        let (entryOffset, o1) = chunkNumber.multipliedReportingOverflow(by: unit)
        let (position, o2) = table.addingReportingOverflow(entryOffset)
        guard !o1, !o2 else { throw FWError.corrupt("erofs inode \(inode.nid): chunk table offset overflows") }
        let entry = ByteCursor(try reader.read(at: position, count: Int(unit), "erofs inode \(inode.nid) chunk \(chunkNumber)"), context: "erofs chunk index")
        // startblk_lo at 4 in a chunk index (startblk_hi and device_id before it), or the block map entry.
        let start = try entry.u32le(at: indexes ? 4 : 0)
        let within = offset & ((1 << chunkBits) - 1)
        let n = Int(min(UInt64(count), (1 << chunkBits) - within))
        if start == EROFS.nullAddress32 { return zero(buffer, n) }
        let (chunkBase, o3) = UInt64(start).multipliedReportingOverflow(by: reader.blockSize)
        let (abs, o4) = chunkBase.addingReportingOverflow(within)
        guard !o3, !o4 else { throw FWError.corrupt("erofs inode \(inode.nid): chunk address overflows") }
        try reader.source.readExactly(at: abs, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
        return n
    }

    private func compressed(_ zmap: ZMap, offset: UInt64, buffer: UnsafeMutableRawBufferPointer, count: Int) throws -> Int {
        if let hit = cache.firstIndex(where: { offset >= $0.start && offset - $0.start < UInt64($0.bytes.count) }) {
            if hit != 0 { cache.insert(cache.remove(at: hit), at: 0) }
            return copyCached(offset: offset, buffer: buffer, count: count)
        }
        let extent = try zmap.extent(containing: offset)
        switch extent.source {
        case .fragment(let fragmentOffset):
            // Tail (or whole file) kept in the packed inode at fragmentOffset.
            guard inode.nid != reader.superBlock.packedNid else {
                throw FWError.corrupt("erofs packed inode \(inode.nid) refers to a fragment of itself")
            }
            let skip = offset - extent.logicalStart
            let (position, overflow) = fragmentOffset.addingReportingOverflow(skip)
            guard !overflow else { throw FWError.corrupt("erofs inode \(inode.nid): fragment offset overflows") }
            let n = Int(min(UInt64(count), extent.logicalEnd - offset))
            let packed = try reader.packedInode()
            guard position < packed.inode.size, packed.inode.size - position >= UInt64(n) else {
                throw FWError.corrupt("erofs inode \(inode.nid): fragment at \(fragmentOffset) is past the end of the packed inode")
            }
            var done = 0
            while done < n {
                let got = try packed.read(at: position + UInt64(done), into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<n]))
                guard got > 0 else { throw FWError.corrupt("erofs inode \(inode.nid): fragment cut short") }
                done += got
            }
            return n
        default:
            if cacheEntries == 1 { cache = []; cachedBytes = 0 }
            let bytes = try zmap.decode(extent)
            cache.insert((extent.logicalStart, bytes), at: 0)
            cachedBytes += bytes.count
            while cache.count > cacheEntries || (cache.count > 1 && cachedBytes > Self.cacheByteLimit) {
                cachedBytes -= cache.removeLast().bytes.count
            }
            return copyCached(offset: offset, buffer: buffer, count: count)
        }
    }

    /// Copies from the most recent cache entry, which holds `offset`.
    private func copyCached(offset: UInt64, buffer: UnsafeMutableRawBufferPointer, count: Int) -> Int {
        let cached = cache[0].bytes
        let start = Int(offset - cache[0].start)
        let n = min(count, cached.count - start)
        cached.withUnsafeBytes { src in
            UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[start..<(start + n)]))
        }
        return n
    }
}
