import Codecs
import DiskImage
import FileSystems

/// A read-only EROFS filesystem in userspace.
///
/// Opening reads the superblock and the compression configurations only; inodes, directories and
/// data are read on demand. Inode numbers are EROFS nids (the inode's 32-byte slot in the
/// metadata area), so two directory entries with one nid are hardlinks.
///
/// Supported: compact and extended inodes; FLAT_PLAIN, FLAT_INLINE, CHUNK_BASED (block maps and
/// chunk indexes, holes read as zeros), COMPRESSED_FULL and COMPRESSED_COMPACT (2- and 4-byte
/// packs) with lz4/lz4hc and MicroLZMA, big pclusters, ztailpacking, fragments (the packed inode)
/// and deduplicated (partially referenced) pclusters; inline and shared xattrs, long xattr name
/// prefixes. Not supported (refused with `.unsupported`): extra devices, 48-bit
/// addresses, metabox, the newer extent-record compressed format, deflate pclusters, partially
/// referenced zstd pclusters. zstd pclusters (HEAD1 or HEAD2) decode with `Codecs.Zstd`.
public final class EROFSReader: InodeTableReader {
    public let formatName = "erofs"
    public let sourceName: String
    /// The image and partition its errors name.
    public let place: FWError.Place
    public let superBlock: EROFS.SuperBlock
    public var rootInode: UInt64 { UInt64(superBlock.rootNid) }
    /// Compression algorithms the superblock declares (bit n = `EROFS.Algorithm(rawValue: n)`).
    public let availableAlgorithms: UInt16
    /// MicroLZMA dictionary size from the configuration (0 when the image has no LZMA).
    public let lzmaDictionarySize: UInt32
    /// lz4 maximum match distance, kept for information (the decoder does not need it).
    public let lz4MaxDistance: UInt16

    let source: any ByteSource
    let blockSize: UInt64
    let blockSizeBits: UInt64
    let metaBase: UInt64
    let xattrBase: UInt64
    private var packedData: DataReader?
    /// Long xattr name prefixes (full prefix text), loaded on first use.
    private var longPrefixes: [[UInt8]]?

    /// Opens the EROFS filesystem that `source` holds (a partition slice or an image file).
    /// The superblock's `blocks` count of the block size.
    public var declaredSize: UInt64? { UInt64(superBlock.blocks) << blockSizeBits }

    public init(source: any ByteSource, name: String) throws {
        self.source = source
        self.sourceName = name
        self.place = FWError.Place(source: source, name: name)
        do {
            let sbBytes = try source.bytes(at: EROFS.superBlockOffset, count: 128)
            let sb = try EROFS.SuperBlock(ByteCursor(sbBytes, context: "erofs superblock"))
            guard sb.magic == EROFS.magic else {
                throw FWError.corrupt("not an EROFS filesystem: bad superblock magic 0x\(String(sb.magic, radix: 16)) (expected 0xe0f5e1e2)")
            }
            guard (9...16).contains(sb.blockSizeBits) else {
                throw FWError.unsupported("erofs block size 2^\(sb.blockSizeBits) is not supported (2^9 to 2^16 are)")
            }
            let unknown = sb.featureIncompat.subtracting(EROFS.IncompatibleFeatures.supported)
            guard unknown.isEmpty else {
                throw FWError.unsupported("erofs incompatible feature(s) \(unknown) not supported")
            }
            guard sb.extraDevices == 0 else {
                throw FWError.unsupported("erofs with \(sb.extraDevices) extra device(s) (multi-device images) is not supported")
            }
            guard sb.directoryBlockBits == 0 else {
                throw FWError.unsupported("erofs directory block size bits \(sb.directoryBlockBits) not supported")
            }
            superBlock = sb
            blockSizeBits = UInt64(sb.blockSizeBits)
            blockSize = 1 << blockSizeBits
            let (meta, o1) = UInt64(sb.metaBlockAddress).multipliedReportingOverflow(by: blockSize)
            let (xattr, o2) = UInt64(sb.xattrBlockAddress).multipliedReportingOverflow(by: blockSize)
            guard !o1, !o2 else { throw FWError.corrupt("erofs metadata block address overflows") }
            metaBase = meta
            xattrBase = xattr

            // Compression configurations (`z_erofs_parse_cfgs`): with COMPR_CFGS, one
            // length-prefixed record per declared algorithm right after the superblock.
            var algorithms: UInt16 = 0
            var dict: UInt32 = 0
            var distance: UInt16 = 0
            if sb.featureIncompat.contains(.compressionConfigs) {
                algorithms = sb.availableAlgorithmsOrLZ4Distance
                var offset = EROFS.superBlockOffset + UInt64(sb.size)
                for alg in 0..<16 where algorithms & (1 << alg) != 0 {
                    let size = Int(try ByteCursor(try source.bytes(at: offset, count: 2), context: "erofs compression configuration").u16le(at: 0))
                    let payload = ByteCursor(try source.bytes(at: offset + 2, count: size), context: "erofs compression configuration \(alg)")
                    switch EROFS.Algorithm(rawValue: UInt8(alg)) {
                    case .lz4?:
                        if size >= 2 { distance = try payload.u16le(at: 0) }
                    case .lzma?:
                        guard size >= 4 else { throw FWError.corrupt("erofs lzma configuration of \(size) bytes is too short") }
                        dict = try payload.u32le(at: 0)
                        guard dict <= MicroLZMA.maximumDictionarySize else {
                            throw FWError.corrupt("erofs lzma dictionary size \(dict) is too large")
                        }
                    default:
                        break
                    }
                    offset += 2 + UInt64(size)
                }
            } else {
                // Without configurations only lz4 exists; the field is lz4_max_distance.
                distance = sb.availableAlgorithmsOrLZ4Distance
                algorithms = 1 << EROFS.Algorithm.lz4.rawValue
            }
            availableAlgorithms = algorithms
            lzmaDictionarySize = dict
            lz4MaxDistance = distance

            let root = try inode(rootInode)
            guard root.fileType == .directory else {
                throw FWError.corrupt("erofs root nid \(rootInode) is not a directory (mode 0o\(String(root.mode, radix: 8)))")
            }
        } catch let error as FWError {
            throw error.within(place)
        }
    }

    // MARK: FileSystemReader

    package func metadata(of ino: EROFS.Inode, type: FileType, inode: UInt64) throws -> Metadata {
        let fields = try TypedFields(type, storedSize: ino.size, symlinkTarget: {
            try checkSymlinkLength(ino.size, inode: inode)
            return try readAll(ino)
        }, device: { DeviceNumber(linux: UInt64(ino.union)) })
        return Metadata(type: type, permissions: ino.mode & 0o7777, uid: ino.uid, gid: ino.gid, size: fields.size,
                        mtime: ino.mtime, linkCount: ino.linkCount, inode: inode, symlinkTarget: fields.symlinkTarget,
                        device: fields.device, xattrs: try xattrs(of: ino))
    }

    package func contents(of ino: EROFS.Inode, inode: UInt64) throws -> any FileContents {
        EROFSFile(data: try DataReader(reader: self, inode: ino), place: place)
    }

    // MARK: Inodes

    /// Loads inode `nid` from meta_blkaddr * blocksize + nid * 32.
    package func inode(_ nid: UInt64) throws -> EROFS.Inode {
        let (slot, o1) = nid.multipliedReportingOverflow(by: 32)
        let (location, o2) = metaBase.addingReportingOverflow(slot)
        guard !o1, !o2, location < source.size, source.size - location >= 32 else {
            throw FWError.corrupt("erofs nid \(nid) points past the end of the filesystem (\(source.size) bytes)")
        }
        var bytes = try source.bytes(at: location, count: 32)
        if bytes[0] & 1 == 1 {
            guard source.size - location >= 64 else {
                throw FWError.corrupt("erofs extended inode \(nid) is cut off by the end of the filesystem")
            }
            bytes = try source.bytes(at: location, count: 64)
        }
        return try EROFS.Inode(nid: nid, location: location, bytes: ByteCursor(bytes, context: "erofs inode \(nid)"), superBlock: superBlock)
    }

    /// The data of a small inode (symlink target), whole.
    func readAll(_ ino: EROFS.Inode) throws -> [UInt8] {
        guard let count = Int(exactly: ino.size), count <= maximumSingleRead else {
            throw FWError(.limitExceeded, "erofs inode \(ino.nid) of \(ino.size) bytes is too large to read whole")
        }
        var result = [UInt8](repeating: 0, count: count)
        let data = try DataReader(reader: self, inode: ino)
        var done = 0
        while done < count {
            let n = try result.withUnsafeMutableBytes { try data.read(at: UInt64(done), into: UnsafeMutableRawBufferPointer(rebasing: $0[done...])) }
            guard n > 0 else { throw FWError.corrupt("erofs inode \(ino.nid): data ends after \(done) of \(count) bytes") }
            done += n
        }
        return result
    }

    /// The packed inode's data (fragments), opened once.
    func packedInode() throws -> DataReader {
        if let packedData { return packedData }
        guard superBlock.featureIncompat.contains(.fragments), superBlock.packedNid != 0 else {
            throw FWError.corrupt("erofs file refers to a fragment but the filesystem has no packed inode")
        }
        let ino = try inode(superBlock.packedNid)
        guard ino.fileType == .regular else { throw FWError.corrupt("erofs packed inode \(superBlock.packedNid) is not a regular file") }
        let data = try DataReader(reader: self, inode: ino, cacheEntries: 32)
        packedData = data
        return data
    }

    // MARK: Directories

    /// Directory blocks (`struct erofs_dirent` arrays followed by names), the last one possibly
    /// shorter (tail-packed). Names run to the next entry's nameoff, the last to a NUL or the
    /// block's end.
    package func entries(of ino: EROFS.Inode, inode: UInt64) throws -> [DirectoryEntry] {
        let data = try DataReader(reader: self, inode: ino)
        var entries: [DirectoryEntry] = []
        var block = [UInt8](repeating: 0, count: Int(blockSize))
        var offset: UInt64 = 0
        while offset < ino.size {
            let length = Int(min(blockSize, ino.size - offset))
            var filled = 0
            while filled < length {
                let n = try block.withUnsafeMutableBytes {
                    try data.read(at: offset + UInt64(filled), into: UnsafeMutableRawBufferPointer(rebasing: $0[filled..<length]))
                }
                guard n > 0 else { throw FWError.corrupt("erofs directory \(ino.nid): data ends at \(offset + UInt64(filled))") }
                filled += n
            }
            let c = ByteCursor(Array(block[0..<length]), context: "erofs directory \(ino.nid) block at \(offset)")
            let firstNameOffset = Int(try c.u16le(at: 8))
            guard firstNameOffset >= 12, firstNameOffset % 12 == 0, firstNameOffset <= length else {
                throw FWError.corrupt("erofs directory \(ino.nid): bad first name offset \(firstNameOffset) in the block at \(offset)")
            }
            let count = firstNameOffset / 12
            for i in 0..<count {
                let nid = try c.u64le(at: 12 * i)
                let nameStart = Int(try c.u16le(at: 12 * i + 8))
                var nameEnd: Int
                if i + 1 < count {
                    nameEnd = Int(try c.u16le(at: 12 * (i + 1) + 8))
                } else {
                    nameEnd = length
                    if nameStart <= length, let nul = block[nameStart..<length].firstIndex(of: 0) { nameEnd = nul }
                }
                guard nameStart >= firstNameOffset, nameStart < nameEnd, nameEnd <= length, nameEnd - nameStart <= 255 else {
                    throw FWError.corrupt("erofs directory \(ino.nid): entry \(i) of the block at \(offset) has a bad name range \(nameStart)..<\(nameEnd)")
                }
                let name = Array(block[nameStart..<nameEnd])
                if name == [0x2E] || name == [0x2E, 0x2E] { continue }
                entries.append(DirectoryEntry(name: name, inode: nid))
                guard entries.count <= WalkLimits.maximumDirectoryEntries else {
                    throw FWError(.limitExceeded, "erofs directory \(ino.nid) has more than \(WalkLimits.maximumDirectoryEntries) entries")
                }
            }
            offset += UInt64(length)
        }
        return entries
    }

    // MARK: Extended attributes

    /// `erofs_xattr_ibody_header` (h_shared_count at 4, shared ids from 12), then inline
    /// `erofs_xattr_entry` records (name length, name index, value size, name, value; 4-aligned).
    func xattrs(of ino: EROFS.Inode) throws -> [ExtendedAttribute] {
        guard ino.xattrCount != 0 else { return [] }
        let size = ino.xattrSize
        let c = ByteCursor(try source.bytes(at: ino.location + UInt64(ino.inodeSize), count: size), context: "erofs xattrs of inode \(ino.nid)")
        let shared = Int(try c.u8(at: 4))
        var result: [ExtendedAttribute] = []
        for i in 0..<shared {
            let id = try c.u32le(at: 12 + 4 * i)
            let (position, overflow) = xattrBase.addingReportingOverflow(UInt64(id) * 4)
            guard !overflow else { throw FWError.corrupt("erofs shared xattr id \(id) overflows") }
            let header = ByteCursor(try source.bytes(at: position, count: 4), context: "erofs shared xattr \(id)")
            let nameLength = Int(try header.u8(at: 0))
            let valueSize = Int(try header.u16le(at: 2))
            let body = try source.bytes(at: position + 4, count: nameLength + valueSize)
            result.append(try attribute(index: try header.u8(at: 1), name: body[0..<nameLength], value: body[nameLength...], inode: ino.nid))
        }
        var position = 12 + 4 * shared
        guard position <= size else {
            throw FWError.corrupt("erofs inode \(ino.nid): \(shared) shared xattrs do not fit in the \(size)-byte xattr area")
        }
        while size - position >= 4 {
            let nameLength = Int(try c.u8(at: position))
            let index = try c.u8(at: position + 1)
            let valueSize = Int(try c.u16le(at: position + 2))
            let body = try c.slice(at: position + 4, count: nameLength + valueSize)
            let start = body.startIndex
            result.append(try attribute(index: index, name: body[start..<(start + nameLength)], value: body[(start + nameLength)...], inode: ino.nid))
            position += (4 + nameLength + valueSize + 3) & ~3
        }
        return result
    }

    /// Name index prefixes (`EROFS_XATTR_INDEX_*`); with bit 7 set, the low bits pick a long
    /// prefix (XATTR_PREFIXES).
    private func attribute(index: UInt8, name: ArraySlice<UInt8>, value: ArraySlice<UInt8>, inode: UInt64) throws -> ExtendedAttribute {
        var full: [UInt8]
        if index & 0x80 != 0 {
            let prefixes = try longXattrPrefixes()
            let id = Int(index & 0x7F)
            guard id < prefixes.count else {
                throw FWError.corrupt("erofs inode \(inode): xattr uses long prefix \(id) of \(prefixes.count)")
            }
            full = prefixes[id]
        } else if let prefix = Self.shortPrefix(index) {
            full = Array(prefix.utf8)
        } else {
            throw FWError.corrupt("erofs inode \(inode): xattr with unknown name index \(index)")
        }
        full += name
        return ExtendedAttribute(name: String(decoding: full, as: UTF8.self), value: Array(value))
    }

    static func shortPrefix(_ index: UInt8) -> String? {
        switch index {
        case 1: return "user."
        case 2: return "system.posix_acl_access"
        case 3: return "system.posix_acl_default"
        case 4: return "trusted."
        case 5: return "lustre."
        case 6: return "security."
        default: return nil
        }
    }

    /// `xattr_prefix_count` records from `xattr_prefix_start` * 4, in the packed inode (or the
    /// filesystem itself without one, or with the PLAIN_XATTR_PFX compat flag): each 4-aligned,
    /// a le16 length then `struct erofs_xattr_long_prefix` (base name index, infix).
    func longXattrPrefixes() throws -> [[UInt8]] {
        if let longPrefixes { return longPrefixes }
        var result: [[UInt8]] = []
        let count = Int(superBlock.xattrPrefixCount)
        if superBlock.featureIncompat.contains(.xattrPrefixes), count > 0 {
            let inPacked = superBlock.packedNid != 0 && superBlock.featureCompat & 0x10 == 0
            let packed = inPacked ? try packedInode() : nil
            func bytes(_ offset: UInt64, _ n: Int) throws -> [UInt8] {
                guard let packed else { return try read(at: offset, count: n, "erofs long xattr prefix") }
                var out = [UInt8](repeating: 0, count: n)
                var done = 0
                while done < n {
                    let got = try out.withUnsafeMutableBytes { try packed.read(at: offset + UInt64(done), into: UnsafeMutableRawBufferPointer(rebasing: $0[done...])) }
                    guard got > 0 else { throw FWError.corrupt("erofs long xattr prefix at \(offset) is past the end of the packed inode") }
                    done += got
                }
                return out
            }
            var offset = UInt64(superBlock.xattrPrefixStart) * 4
            for i in 0..<count {
                offset = (offset + 3) / 4 * 4
                let length = Int(try ByteCursor(try bytes(offset, 2), context: "erofs long xattr prefix \(i)").u16le(at: 0))
                guard length >= 1 else { throw FWError.corrupt("erofs long xattr prefix \(i) is empty") }
                let record = try bytes(offset + 2, length)
                guard let base = Self.shortPrefix(record[0]) else {
                    throw FWError.corrupt("erofs long xattr prefix \(i) has unknown base index \(record[0])")
                }
                result.append(Array(base.utf8) + record[1...])
                offset += 2 + UInt64(length)
            }
        }
        longPrefixes = result
        return result
    }

    // MARK: Helpers

    /// Reads `count` bytes at an absolute offset, naming `what` on failure.
    func read(at offset: UInt64, count: Int, _ what: @autoclosure () -> String) throws -> [UInt8] {
        do {
            return try source.bytes(at: offset, count: count)
        } catch var error as FWError {
            error.message = "\(what()): \(error.message)"
            throw error
        }
    }

}

/// Sequential reads over one regular file.
final class EROFSFile: FileContents {
    let data: DataReader
    let place: FWError.Place
    private var position: UInt64 = 0
    var size: UInt64 { data.inode.size }

    init(data: DataReader, place: FWError.Place) {
        self.data = data
        self.place = place
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        do {
            while done < buffer.count, position < size {
                let n = try data.read(at: position, into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
                guard n > 0 else { throw FWError.corrupt("erofs inode \(data.inode.nid): no data at offset \(position)") }
                done += n
                position += UInt64(n)
            }
        } catch let error as FWError {
            throw error.within(place)
        }
        return done
    }
}
