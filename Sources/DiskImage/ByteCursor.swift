/// Bounds-checked little/big-endian field access over bytes read from a disk.
///
/// Every accessor checks the range first and throws `.corrupt` instead of trapping, so a parser
/// can decode a record field by field at the offsets its specification gives.
public struct ByteCursor: Sendable {
    public let bytes: [UInt8]
    /// Read position for the sequential accessors.
    public var position: Int = 0
    /// What is being parsed, for error messages ("GPT header", "squashfs inode").
    public let context: String

    public init(_ bytes: [UInt8], context: String = "record") {
        self.bytes = bytes
        self.context = context
    }

    public var count: Int { bytes.count }
    public var remaining: Int { bytes.count - position }

    @inline(__always)
    private func check(_ offset: Int, _ length: Int) throws {
        guard offset >= 0, length >= 0, offset <= bytes.count, length <= bytes.count - offset else {
            throw FWError.corrupt("\(context): field at \(offset)+\(length) is outside the \(bytes.count)-byte record")
        }
    }

    public func u8(at offset: Int) throws -> UInt8 {
        try check(offset, 1)
        return bytes[offset]
    }

    public func u16le(at offset: Int) throws -> UInt16 {
        try check(offset, 2)
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    public func u32le(at offset: Int) throws -> UInt32 {
        try check(offset, 4)
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(bytes[offset + i]) << (8 * i) }
        return v
    }

    public func u64le(at offset: Int) throws -> UInt64 {
        try check(offset, 8)
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[offset + i]) << (8 * i) }
        return v
    }

    public func u16be(at offset: Int) throws -> UInt16 {
        try check(offset, 2)
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    public func u32be(at offset: Int) throws -> UInt32 {
        try check(offset, 4)
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(bytes[offset + i]) }
        return v
    }

    public func u64be(at offset: Int) throws -> UInt64 {
        try check(offset, 8)
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(bytes[offset + i]) }
        return v
    }

    public func slice(at offset: Int, count: Int) throws -> ArraySlice<UInt8> {
        try check(offset, count)
        return bytes[offset..<(offset + count)]
    }

    public func array(at offset: Int, count: Int) throws -> [UInt8] {
        Array(try slice(at: offset, count: count))
    }

    // Sequential forms, advancing `position`.
    public mutating func readU8() throws -> UInt8 { defer { position += 1 }; return try u8(at: position) }
    public mutating func readU16le() throws -> UInt16 { defer { position += 2 }; return try u16le(at: position) }
    public mutating func readU32le() throws -> UInt32 { defer { position += 4 }; return try u32le(at: position) }
    public mutating func readU64le() throws -> UInt64 { defer { position += 8 }; return try u64le(at: position) }
    public mutating func readBytes(_ count: Int) throws -> [UInt8] {
        let result = try array(at: position, count: count)
        position += count
        return result
    }
    public mutating func skip(_ count: Int) throws {
        try check(position, count)
        position += count
    }
}

/// CRC-32 (IEEE 802.3, reflected, as GPT, U-Boot environments and gzip use it).
public enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum<S: Sequence>(_ bytes: S, seed: UInt32 = 0) -> UInt32 where S.Element == UInt8 {
        var crc = ~seed
        for b in bytes { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return ~crc
    }
}
