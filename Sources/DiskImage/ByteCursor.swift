/// The byte order of an on-disk integer.
public enum Endianness: Sendable, Equatable {
    case little
    case big

    /// The order of the machine running this code.
    public static var host: Endianness { 1.littleEndian == 1 ? .little : .big }
}

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
        guard contains(offset, length) else {
            throw FWError.corrupt("\(context): field at \(offset)+\(length) is outside the \(bytes.count)-byte record")
        }
    }

    @inline(__always)
    private func contains(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= bytes.count && length <= bytes.count - offset
    }

    /// The `T` stored at `offset` in `endianness` byte order; throws `.corrupt` when it is not
    /// inside the bytes (as swift-nio's `ByteBuffer.getInteger(at:endianness:as:)`).
    @inline(__always)
    public func integer<T: FixedWidthInteger>(at offset: Int, endianness: Endianness, as: T.Type = T.self) throws -> T {
        try check(offset, MemoryLayout<T>.size)
        return load(offset, endianness)
    }

    /// The `T` stored at `offset` in `endianness` byte order, or nil when it is not inside the
    /// bytes: for a field whose absence is an answer (a probe, an optional trailer).
    @inline(__always)
    public func integerIfPresent<T: FixedWidthInteger>(at offset: Int, endianness: Endianness, as: T.Type = T.self) -> T? {
        guard contains(offset, MemoryLayout<T>.size) else { return nil }
        return load(offset, endianness)
    }

    @inline(__always)
    private func load<T: FixedWidthInteger>(_ offset: Int, _ endianness: Endianness) -> T {
        let raw = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        switch endianness {
        case .little: return T(littleEndian: raw)
        case .big: return T(bigEndian: raw)
        }
    }

    // Named forms of `integer(at:endianness:as:)`, for fields whose width and order a
    // specification fixes.
    public func u8(at offset: Int) throws -> UInt8 { try integer(at: offset, endianness: .little) }
    public func u16le(at offset: Int) throws -> UInt16 { try integer(at: offset, endianness: .little) }
    public func u32le(at offset: Int) throws -> UInt32 { try integer(at: offset, endianness: .little) }
    public func u64le(at offset: Int) throws -> UInt64 { try integer(at: offset, endianness: .little) }
    public func u16be(at offset: Int) throws -> UInt16 { try integer(at: offset, endianness: .big) }
    public func u32be(at offset: Int) throws -> UInt32 { try integer(at: offset, endianness: .big) }
    public func u64be(at offset: Int) throws -> UInt64 { try integer(at: offset, endianness: .big) }

    /// True when the bytes at `offset` are `expected` (a magic number or signature); false when
    /// they differ or lie outside the record.
    public func matches(_ expected: [UInt8], at offset: Int) -> Bool {
        contains(offset, expected.count) && bytes[offset..<(offset + expected.count)].elementsEqual(expected)
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

    /// An unsigned LEB128 number (7 bits a byte, low group first, high bit = more follow), as
    /// DWARF and ELF attribute sections store them; at most 64 bits.
    public mutating func readULEB128() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readU8()
            guard shift < 64, shift < 63 || byte & 0x7E == 0 else { throw FWError.corrupt("\(context): LEB128 number over 64 bits") }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    /// A NUL-terminated string (the NUL read and not returned); an error when no NUL is left in
    /// the record.
    public mutating func readCString() throws -> [UInt8] {
        guard let end = bytes[min(position, bytes.endIndex)...].firstIndex(of: 0) else {
            throw FWError.corrupt("\(context): string without its terminating NUL at \(position)")
        }
        defer { position = end + 1 }
        return Array(bytes[position..<end])
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

    /// Linux's `crc32(seed, p, len)` (`crc32_le`): the same polynomial without the inversions
    /// before and after, as JFFS2 (seed 0), UBI and UBIFS (seed 0xFFFFFFFF) store their CRCs.
    public static func kernel<S: Sequence>(_ bytes: S, seed: UInt32) -> UInt32 where S.Element == UInt8 {
        ~checksum(bytes, seed: ~seed)
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial and final inversion), as btrfs
/// checksums its superblock and tree blocks (`csum_type` 0).
public enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// Slicing-by-8 (Intel's "A Systematic Approach to Building High Performance Software-based
    /// CRC Generators"): `slices[k * 256 + b]` is the CRC of byte b followed by k zero bytes.
    private static let slices: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 { t[i] = table[i] }
        for k in 1..<8 {
            for i in 0..<256 {
                let previous = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return t
    }()

    public static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        var crc = ~seed
        slices.withUnsafeBufferPointer { t in
            var i = 0
            let n = bytes.count
            while n - i >= 8 {
                let lo = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ crc
                let hi = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                crc = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                crc = t[Int((crc ^ UInt32(bytes[i])) & 0xFF)] ^ (crc >> 8)
                i += 1
            }
        }
        return ~crc
    }

    public static func checksum(_ bytes: [UInt8], seed: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, seed: seed) }
    }
}

extension Array where Element == UInt8 {
    /// Stores `value` at `offset` in `endianness` byte order, the writing side of
    /// `ByteCursor.integer(at:endianness:as:)` for a record being changed in memory; throws
    /// `.corrupt` when the field is not inside the bytes.
    public mutating func setInteger<T: FixedWidthInteger>(_ value: T, at offset: Int, endianness: Endianness = .little) throws {
        let size = MemoryLayout<T>.size
        guard offset >= 0, offset <= count, size <= count - offset else {
            throw FWError.corrupt("field at \(offset)+\(size) is outside the \(count)-byte record")
        }
        let stored = endianness == .little ? value.littleEndian : value.bigEndian
        withUnsafeMutableBytes { $0.storeBytes(of: stored, toByteOffset: offset, as: T.self) }
    }

    /// Appends `value` in `endianness` byte order.
    public mutating func appendInteger<T: FixedWidthInteger>(_ value: T, endianness: Endianness = .little) {
        let stored = endianness == .little ? value.littleEndian : value.bigEndian
        Swift.withUnsafeBytes(of: stored) { append(contentsOf: $0) }
    }
}
