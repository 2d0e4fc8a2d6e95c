/// The one tar header parser: the OVA wrapper (DiskFormats) and the tar filesystem
/// (FileSystemTar) both read an archive's members through `TarMembers`.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `struct posix_header`: one 512-byte tar header block (ustar, with GNU base-256 numbers), its
/// checksum verified and its size decoded when it is made.
public struct TarHeader: Sendable {
    public static let blockSize = 512
    /// The block as read.
    public let block: [UInt8]
    /// size, offset 124 (12 bytes): octal, or GNU base-256.
    public let size: UInt64

    /// Checks chksum (offset 148, 8 bytes octal: the sum of the block's bytes, the field itself
    /// counted as spaces) and decodes the size; `offset` (where the block starts) names it in errors.
    public init(_ block: [UInt8], at offset: UInt64) throws {
        precondition(block.count == Self.blockSize)
        let stored = Self.octal(block[148..<156])
        let sum = block.withUnsafeBufferPointer { b in
            var sum = UInt64(8 * 0x20)
            for i in 0..<148 { sum &+= UInt64(b[i]) }
            for i in 156..<Self.blockSize { sum &+= UInt64(b[i]) }
            return sum
        }
        guard stored == sum else {
            throw FWError.corrupt("header at offset \(offset): checksum \(stored.map(String.init) ?? "?") != \(sum)")
        }
        guard let size = Self.number(block[124..<136]) else { throw FWError.corrupt("header at offset \(offset): bad size field") }
        self.block = block
        self.size = size
    }

    /// typeflag, offset 156.
    public var type: UInt8 { block[156] }
    /// A regular file: typeflag '0', NUL (old tar) or '7' (contiguous).
    public var isRegularFile: Bool { type == UInt8(ascii: "0") || type == 0 || type == UInt8(ascii: "7") }
    /// name, offset 0 (100 bytes), behind prefix (offset 345, 155 bytes) and "/" when the magic
    /// (offset 257) is "ustar".
    public var name: [UInt8] {
        let name = Self.string(block[0..<100])
        guard block[257..<262].elementsEqual("ustar".utf8) else { return name }
        let prefix = Self.string(block[345..<500])
        return prefix.isEmpty ? name : prefix + [0x2F] + name
    }
    /// linkname, offset 157 (100 bytes).
    public var linkName: [UInt8] { Self.string(block[157..<257]) }
    /// mode, offset 100 (8 bytes octal).
    public var mode: UInt64? { Self.octal(block[100..<108]) }
    /// uid and gid, offsets 108 and 116 (8 bytes each).
    public var uid: UInt64? { Self.number(block[108..<116]) }
    public var gid: UInt64? { Self.number(block[116..<124]) }
    /// mtime, offset 136 (12 bytes): seconds since the epoch.
    public var mtime: UInt64? { Self.number(block[136..<148]) }
    /// devmajor and devminor, offsets 329 and 337 (8 bytes each).
    public var deviceMajor: UInt64? { Self.number(block[329..<337]) }
    public var deviceMinor: UInt64? { Self.number(block[337..<345]) }

    /// A NUL-terminated field.
    static func string(_ field: ArraySlice<UInt8>) -> [UInt8] { Array(field.prefix { $0 != 0 }) }

    /// The bytes before the first NUL (a GNU long name's payload; memchr, as these run to 10 KB
    /// and more in a deep tree).
    static func untilNUL(_ bytes: [UInt8]) -> [UInt8] {
        let end = bytes.withUnsafeBytes { b -> Int in
            guard let base = b.baseAddress, let nul = memchr(base, 0, b.count) else { return b.count }
            return base.distance(to: UnsafeRawPointer(nul))
        }
        return end == bytes.count ? bytes : Array(bytes[..<end])
    }

    /// An octal field: leading spaces skipped, ended by NUL or a space; nil on any other byte or
    /// on overflow.
    static func octal(_ field: ArraySlice<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        var seen = false
        for b in field {
            if b == 0 || (b == 0x20 && seen) { break }
            if b == 0x20 { continue }
            guard b >= 0x30, b <= 0x37 else { return nil }
            let (v, o) = value.multipliedReportingOverflow(by: 8)
            guard !o else { return nil }
            value = v + UInt64(b - 0x30)
            seen = true
        }
        return value
    }

    /// Octal, or GNU base-256 when the high bit of the first byte is set.
    static func number(_ field: ArraySlice<UInt8>) -> UInt64? {
        guard let first = field.first, first & 0x80 != 0 else { return octal(field) }
        var value = UInt64(first & 0x7F)
        for b in field.dropFirst() {
            guard value >> 56 == 0 else { return nil }
            value = value << 8 | UInt64(b)
        }
        return value
    }

    /// A pax extended header's "LEN key=value\n" records.
    static func paxRecords(_ bytes: [UInt8]) -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        var i = 0
        while i < bytes.count {
            guard let space = bytes[i...].firstIndex(of: 0x20), let len = Int(String(decoding: bytes[i..<space], as: UTF8.self)),
                  len > 0, i + len <= bytes.count, let eq = bytes[(space + 1)..<(i + len)].firstIndex(of: 0x3D) else { break }
            let key = String(decoding: bytes[(space + 1)..<eq], as: UTF8.self)
            var value = Array(bytes[(eq + 1)..<(i + len)])
            if value.last == 0x0A { value.removeLast() }
            result[key] = value
            i += len
        }
        return result
    }
}

/// One member of a tar archive, with the pax extended header ('x') and GNU long names ('L', 'K')
/// that came before it applied.
public struct TarMember: Sendable {
    public let header: TarHeader
    /// Where its data starts (the block after its header) and its size (pax "size" over the header's).
    public let dataOffset: UInt64
    public let size: UInt64
    /// pax "path", else the GNU long name, else the header's (ustar prefix and name).
    public let path: [UInt8]
    /// pax "linkpath", else the GNU long link name, else the header's linkname.
    public let linkPath: [UInt8]
    /// The records of its pax extended header.
    public let pax: [String: [UInt8]]

    public var type: UInt8 { header.type }

    /// A pax record holding a decimal number ("uid", "SCHILY.devmajor", ...).
    public func paxNumber(_ key: String) -> UInt64? { pax[key].flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } }
}

/// The members of a tar archive in order, read one header at a time from `source` (their data
/// skipped, never read); the archive ends at an all-zero block or where no whole block is left.
/// Every header block counts towards `maximumHeaders`; a global pax header ('g') is skipped.
public struct TarMembers {
    public let source: any ByteSource
    let maximumHeaders: Int
    let limitCode: FWError.Code
    let errorPath: String?
    let errorPrefix: String
    private var offset: UInt64 = 0
    /// Header blocks met so far (every member, with its pax and GNU long-name headers).
    public private(set) var headerCount = 0

    /// Errors about the archive's structure carry `limitCode` (too many headers) or `.corrupt`,
    /// the source's place, `errorPath`, and a message starting with `errorPrefix`.
    public init(source: any ByteSource, maximumHeaders: Int, limitCode: FWError.Code = .limitExceeded,
                errorPath: String? = nil, errorPrefix: String = "") {
        self.source = source
        self.maximumHeaders = maximumHeaders
        self.limitCode = limitCode
        self.errorPath = errorPath
        self.errorPrefix = errorPrefix
    }

    func error(_ code: FWError.Code, _ message: String) -> FWError {
        FWError(code, errorPrefix + message, at: source.place, path: errorPath)
    }

    /// The next member, or nil at the end of the archive.
    public mutating func next() throws -> TarMember? {
        var pax: [String: [UInt8]] = [:]
        var longName: [UInt8]?, longLink: [UInt8]?
        while offset + UInt64(TarHeader.blockSize) <= source.size {
            let block = try source.bytes(at: offset, count: TarHeader.blockSize)
            if block.allSatisfy({ $0 == 0 }) { return nil }
            headerCount += 1
            guard headerCount <= maximumHeaders else { throw error(limitCode, "more than \(maximumHeaders) entries") }
            let header: TarHeader
            do { header = try TarHeader(block, at: offset) } catch let e as FWError { throw error(e.code, e.message) }
            let size = pax["size"].flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } ?? header.size
            let data = offset + UInt64(TarHeader.blockSize)
            let (padded, overflow) = size.addingReportingOverflow((512 - size % 512) % 512)
            guard !overflow, data <= source.size, padded <= source.size - data else {
                throw error(.corrupt, "entry at offset \(offset): \(size) bytes of data run past the end of the archive")
            }
            offset = data + padded
            func payload() throws -> [UInt8] {
                guard size <= 1 << 20 else { throw error(.corrupt, "extended header of \(size) bytes at offset \(data)") }
                return try source.bytes(at: data, count: Int(size))
            }
            switch header.type {
            case UInt8(ascii: "x"): pax = TarHeader.paxRecords(try payload())
            case UInt8(ascii: "g"): break
            case UInt8(ascii: "L"): longName = TarHeader.untilNUL(try payload())
            case UInt8(ascii: "K"): longLink = TarHeader.untilNUL(try payload())
            default:
                return TarMember(header: header, dataOffset: data, size: size, path: pax["path"] ?? longName ?? header.name,
                                 linkPath: pax["linkpath"] ?? longLink ?? header.linkName, pax: pax)
            }
        }
        return nil
    }
}
