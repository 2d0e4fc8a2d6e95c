import DiskImage

/// One record of ext4's fast-commit area (`struct ext4_fc_tl` then its value; little-endian).
struct FastCommitTag: Equatable {
    /// EXT4_FC_TAG_* (fs/ext4/fast_commit.h).
    enum Kind: UInt16 {
        case addRange = 1, deleteRange = 2, create = 3, link = 4, unlink = 5, inode = 6, pad = 7, tail = 8, head = 9
    }
    var kind: Kind
    var value: [UInt8]
}

/// The scan pass over the fast-commit area, as the kernel's ext4_fc_replay_scan does it: the
/// records from the head of the area up to the last tail whose tid is the transaction after the
/// last full commit and whose CRC (raw crc32c from 0 over every record since the previous tail,
/// the tail's own tag, length and tid included) matches. Pure parsing, bounded by the area.
enum FastCommitScan {
    /// sizeof(struct ext4_fc_tl): fc_tag, fc_len.
    static let tagHeaderBytes = 4
    /// EXT4_NAME_LEN.
    static let maximumNameLength = 255

    /// ext4_fc_value_len_isvalid.
    static func lengthIsValid(_ kind: FastCommitTag.Kind, _ length: Int, maximumInodeSize: Int) -> Bool {
        switch kind {
        case .addRange: return length == 16                    // fc_ino + struct ext4_extent
        case .deleteRange: return length == 12                 // fc_ino, fc_lblk, fc_len
        case .create, .link, .unlink: return length - 8 >= 1 && length - 8 <= maximumNameLength   // parent, ino, name
        case .inode: return length - 4 >= 128 && length - 4 <= maximumInodeSize   // fc_ino + raw inode
        case .pad: return true
        case .tail: return length >= 8                         // fc_tid, fc_crc
        case .head: return length == 8                         // fc_features, fc_tid
        }
    }

    /// The records to replay from journal blocks first..<end. A damaged area (a record the kernel
    /// cannot parse before any valid tail, a bad tail CRC, unknown head features) gives no
    /// records and a warning: the kernel refuses to mount it.
    static func scan(first: UInt32, end: UInt32, expectedTid: UInt32, blockSize: Int, maximumInodeSize: Int,
                     read: JBD2.ReadBlock, warnings: inout [String]) -> [FastCommitTag] {
        var committed: [FastCommitTag] = []
        var pending: [FastCommitTag] = []
        var crc: UInt32 = 0
        func damaged(_ why: String) -> [FastCommitTag] {
            if !committed.isEmpty { return committed }   // JBD2_FC_REPLAY_STOP: the valid part counts
            warnings.append("the fast-commit area \(why) (the kernel would refuse to mount); no fast commit applied")
            return []
        }
        var block = first
        while block < end {
            let b: [UInt8]
            do {
                b = try read(block)
            } catch {
                return damaged("cannot be read at journal block \(block) (\(FWError(error).message))")
            }
            guard b.count == blockSize else { return damaged("has a short block") }
            let c = ByteCursor(b, context: "fast commit block")
            // The area is in use only when it starts with a head tag.
            if block == first, c.integerIfPresent(at: 0, endianness: .little, as: UInt16.self) != FastCommitTag.Kind.head.rawValue {
                return []
            }
            var cur = 0
            while cur + tagHeaderBytes <= blockSize {
                guard let rawKind = c.integerIfPresent(at: cur, endianness: .little, as: UInt16.self),
                      let rawLength = c.integerIfPresent(at: cur + 2, endianness: .little, as: UInt16.self) else { break }
                let value = cur + tagHeaderBytes
                let length = Int(rawLength)
                guard length <= blockSize - value, let kind = FastCommitTag.Kind(rawValue: rawKind),
                      lengthIsValid(kind, length, maximumInodeSize: maximumInodeSize) else {
                    return damaged("has an invalid record (tag \(rawKind), \(length) bytes) at journal block \(block)")
                }
                let record = FastCommitTag(kind: kind, value: Array(b[value..<(value + length)]))
                switch kind {
                case .tail:
                    crc = JBD2.crc32c(crc, Array(b[cur..<(value + 4)]))
                    let tid = c.integerIfPresent(at: value, endianness: .little, as: UInt32.self)
                    let stored = c.integerIfPresent(at: value + 4, endianness: .little, as: UInt32.self)
                    guard tid == expectedTid, stored == crc else {
                        return damaged("has a tail that fails its tid or CRC at journal block \(block)")
                    }
                    committed += pending + [record]
                    pending = []
                    crc = 0
                case .head:
                    let features = c.integerIfPresent(at: value, endianness: .little, as: UInt32.self) ?? 0
                    guard features == 0 else { return damaged("needs unknown features 0x\(String(features, radix: 16))") }
                    // A head of another transaction: a stale area, the normal end (JBD2_FC_REPLAY_STOP).
                    guard c.integerIfPresent(at: value + 4, endianness: .little, as: UInt32.self) == expectedTid else { return committed }
                    crc = JBD2.crc32c(crc, Array(b[cur..<(value + length)]))
                    pending.append(record)
                default:
                    crc = JBD2.crc32c(crc, Array(b[cur..<(value + length)]))
                    pending.append(record)
                }
                cur = value + length
            }
            block += 1
        }
        return committed
    }
}
