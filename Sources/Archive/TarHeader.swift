import DiskImage
import FileSystems

/// The 512-byte POSIX ustar header (POSIX.1-2001 `pax` format, IEEE Std 1003.1 "ustar Interchange
/// Format"), encoded field by field at the offsets the standard gives.
struct UstarHeader {
    static let blockSize = 512

    /// Type flags (offset 156).
    enum TypeFlag: UInt8 {
        case regular = 0x30      // '0'
        case hardlink = 0x31     // '1'
        case symlink = 0x32      // '2'
        case character = 0x33    // '3'
        case block = 0x34        // '4'
        case directory = 0x35    // '5'
        case fifo = 0x36         // '6'
        case paxExtended = 0x78  // 'x': PAX extended header for the next member
    }

    /// name[100] at 0 (raw bytes; longer names go in a PAX `path` record).
    var name: [UInt8] = []
    /// mode[8] at 100: permission bits incl. 07000.
    var mode: UInt64 = 0
    /// uid[8] at 108, gid[8] at 116.
    var uid: UInt64 = 0
    var gid: UInt64 = 0
    /// size[12] at 124.
    var size: UInt64 = 0
    /// mtime[12] at 136 (seconds; out-of-range values go in PAX `mtime`).
    var mtime: UInt64 = 0
    /// typeflag at 156.
    var typeFlag: TypeFlag = .regular
    /// linkname[100] at 157.
    var linkName: [UInt8] = []
    /// devmajor[8] at 329, devminor[8] at 337.
    var devMajor: UInt64 = 0
    var devMinor: UInt64 = 0

    /// Largest value of an octal field `width` bytes wide (width-1 digits and a NUL).
    static func octalLimit(width: Int) -> UInt64 { (UInt64(1) << (3 * UInt64(width - 1))) - 1 }

    /// The 512 encoded bytes, checksum included. uname[32] at 265 and gname[32] at 297 stay empty
    /// (numeric owners only); prefix[155] at 345 is unused (long names use PAX).
    func encode() -> [UInt8] {
        var block = [UInt8](repeating: 0, count: UstarHeader.blockSize)
        func put(_ bytes: [UInt8], at offset: Int, width: Int) {
            for (i, b) in bytes.prefix(width).enumerated() { block[offset + i] = b }
        }
        func number(_ value: UInt64, at offset: Int, width: Int) {
            if value <= UstarHeader.octalLimit(width: width) {
                var digits = [UInt8](repeating: 0x30, count: width - 1)
                var v = value
                var i = width - 2
                while v > 0, i >= 0 {
                    digits[i] = 0x30 + UInt8(v & 7)
                    v >>= 3
                    i -= 1
                }
                put(digits, at: offset, width: width - 1)
                block[offset + width - 1] = 0
            } else {
                // GNU base-256: high bit of the first byte set, big-endian value in the rest.
                // The same value is also in a PAX record; this keeps non-PAX readers in step.
                var v = value
                for i in stride(from: width - 1, through: 1, by: -1) {
                    block[offset + i] = UInt8(v & 0xFF)
                    v >>= 8
                }
                block[offset] = 0x80
            }
        }
        put(name, at: 0, width: 100)
        number(mode, at: 100, width: 8)
        number(uid, at: 108, width: 8)
        number(gid, at: 116, width: 8)
        number(size, at: 124, width: 12)
        number(mtime, at: 136, width: 12)
        block[156] = typeFlag.rawValue
        put(linkName, at: 157, width: 100)
        put(Array("ustar".utf8) + [0], at: 257, width: 6)   // magic[6] at 257
        put(Array("00".utf8), at: 263, width: 2)           // version[2] at 263
        number(devMajor, at: 329, width: 8)
        number(devMinor, at: 337, width: 8)
        // chksum[8] at 148: sum of all bytes with the field itself as spaces; 6 octal digits, NUL, space.
        for i in 148..<156 { block[i] = 0x20 }
        let sum = block.reduce(0) { $0 + Int($1) }
        var digits = [UInt8](repeating: 0x30, count: 6)
        var v = sum
        for i in stride(from: 5, through: 0, by: -1) {
            digits[i] = 0x30 + UInt8(v & 7)
            v >>= 3
        }
        put(digits, at: 148, width: 6)
        block[154] = 0
        block[155] = 0x20
        return block
    }
}

/// The body of a PAX extended header: records "LEN KEY=VALUE\n", LEN counting the whole record in
/// decimal including its own digits. Values are raw bytes (binary xattr values are fine).
struct PaxRecords {
    private(set) var bytes: [UInt8] = []

    var isEmpty: Bool { bytes.isEmpty }

    mutating func add(_ key: String, _ value: [UInt8]) {
        let body = 1 + key.utf8.count + 1 + value.count + 1   // " " key "=" value "\n"
        var length = body + 1
        while String(length).utf8.count + body != length { length = String(length).utf8.count + body }
        bytes.append(contentsOf: Array(String(length).utf8))
        bytes.append(0x20)
        bytes.append(contentsOf: Array(key.utf8))
        bytes.append(0x3D)
        bytes.append(contentsOf: value)
        bytes.append(0x0A)
    }

    mutating func add(_ key: String, _ value: String) { add(key, Array(value.utf8)) }

    /// A timestamp as PAX writes it: seconds, and a 9-digit fraction when there are nanoseconds
    /// ("1600000000.123456789"; before the epoch "-1.500000000" is 1.5 s before).
    static func time(_ t: Timestamp) -> String {
        guard t.nanoseconds != 0 else { return String(t.seconds) }
        let ns = min(t.nanoseconds, 999_999_999)
        if t.seconds >= 0 {
            return "\(t.seconds).\(String(1_000_000_000 + UInt64(ns)).dropFirst())"
        }
        // seconds + ns/1e9 is negative: print -(|seconds| - 1).(1e9 - ns)
        let whole = -(t.seconds + 1)
        return "-\(whole).\(String(1_000_000_000 + UInt64(1_000_000_000 - ns)).dropFirst())"
    }
}
