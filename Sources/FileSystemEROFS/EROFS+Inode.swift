import DiskImage
import FileSystems

extension EROFS {
    /// One inode, compact (`struct erofs_inode_compact`, 32 bytes) or extended
    /// (`struct erofs_inode_extended`, 64 bytes), decoded into one shape.
    package struct Inode: Sendable, InodeRecord {
        /// The inode's number: its 32-byte slot in the metadata area.
        var nid: UInt64
        /// Absolute byte offset of the inode in the filesystem image.
        var location: UInt64
        /// 0 `i_format`: bit 0 version (extended), bits 1-3 data layout, bit 4 NLINK_1 (compact
        /// non-directories) or DOT_OMITTED (directories).
        var format: UInt16
        var isExtended: Bool
        var layout: DataLayout
        /// 2 `i_xattr_icount`.
        var xattrCount: UInt16
        /// 4 `i_mode`.
        var mode: UInt16
        /// compact 6 `i_nlink` (16 bit) / extended 44 `i_nlink` (32 bit).
        var linkCount: UInt32
        /// compact 8 `i_size` (32 bit) / extended 8 `i_size` (64 bit).
        var size: UInt64
        /// compact 16 / extended 16 `i_u`: start block, rdev, compressed block count or chunk format.
        var union: UInt32
        /// compact 24 / extended 24 `i_uid`; compact 26 / extended 28 `i_gid`.
        var uid: UInt32
        var gid: UInt32
        /// extended 32 `i_mtime` + 40 `i_mtime_nsec`; compact: superblock build time + 12 `i_mtime`.
        var mtime: Timestamp

        /// 32 or 64.
        var inodeSize: Int { isExtended ? 64 : 32 }
        /// `erofs_xattr_ibody_size`: 0, or the 12-byte header plus 4 bytes per further count.
        var xattrSize: Int { xattrCount == 0 ? 0 : 12 + (Int(xattrCount) - 1) * 4 }
        /// Where the inline data (tail block, map header, chunk indexes) starts.
        var inlineStart: UInt64 { location + UInt64(inodeSize) + UInt64(xattrSize) }

        init(nid: UInt64, location: UInt64, bytes c: ByteCursor, superBlock sb: SuperBlock) throws {
            self.nid = nid
            self.location = location
            format = try c.u16le(at: 0)
            isExtended = format & 1 == 1
            guard let layout = DataLayout(rawValue: UInt8((format >> 1) & 7)) else {
                throw FWError.unsupported("erofs inode \(nid): unknown data layout \((format >> 1) & 7)")
            }
            self.layout = layout
            xattrCount = try c.u16le(at: 2)
            mode = try c.u16le(at: 4)
            if isExtended {
                guard format & ~UInt16(0x1F) == 0 else {
                    throw FWError.unsupported("erofs inode \(nid): unknown i_format bits 0x\(String(format, radix: 16))")
                }
                size = try c.u64le(at: 8)
                union = try c.u32le(at: 16)
                uid = try c.u32le(at: 24)
                gid = try c.u32le(at: 28)
                let seconds = try c.u64le(at: 32)
                let nanoseconds = try c.u32le(at: 40)
                guard let s = Int64(exactly: seconds), nanoseconds < 1_000_000_000 else {
                    throw FWError.corrupt("erofs inode \(nid): invalid mtime \(seconds).\(nanoseconds)")
                }
                mtime = Timestamp(seconds: s, nanoseconds: nanoseconds)
                linkCount = try c.u32le(at: 44)
            } else {
                guard format & ~UInt16(0x1F) == 0 else {
                    throw FWError.unsupported("erofs inode \(nid): unknown i_format bits 0x\(String(format, radix: 16))")
                }
                let isDirectory = mode & 0o170000 == 0o040000
                linkCount = !isDirectory && (format >> 4) & 1 == 1 ? 1 : UInt32(try c.u16le(at: 6))
                size = UInt64(try c.u32le(at: 8))
                let (seconds, overflow) = sb.buildTime.addingReportingOverflow(UInt64(try c.u32le(at: 12)))
                guard !overflow, let s = Int64(exactly: seconds), sb.buildTimeNanoseconds < 1_000_000_000 else {
                    throw FWError.corrupt("erofs inode \(nid): invalid mtime (build time \(sb.buildTime))")
                }
                mtime = Timestamp(seconds: s, nanoseconds: sb.buildTimeNanoseconds)
                union = try c.u32le(at: 16)
                uid = UInt32(try c.u16le(at: 24))
                gid = UInt32(try c.u16le(at: 26))
            }
        }

        package var posixMode: UInt32 { UInt32(mode) }
        var isCompressed: Bool { layout == .compressedFull || layout == .compressedCompact }
    }
}
