import DiskImage

extension FAT {
    /// DIR_Attr bits.
    public struct Attributes: OptionSet, Sendable, Equatable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let readOnly = Attributes(rawValue: 0x01)
        public static let hidden = Attributes(rawValue: 0x02)
        public static let system = Attributes(rawValue: 0x04)
        public static let volumeID = Attributes(rawValue: 0x08)
        public static let directory = Attributes(rawValue: 0x10)
        public static let archive = Attributes(rawValue: 0x20)
        /// ATTR_LONG_NAME: read-only | hidden | system | volume ID, exactly.
        public static let longName: Attributes = [.readOnly, .hidden, .system, .volumeID]
    }

    /// One 32-byte short (8.3) directory entry.
    public struct ShortEntry: Sendable, Equatable {
        /// DIR_Name (offset 0, 11 bytes): 8 base + 3 extension, space padded. Byte 0 is 0xE5 for a
        /// deleted entry, 0x00 for a free one, 0x05 for a name really starting with 0xE5.
        public var name: [UInt8]
        /// DIR_Attr (offset 11).
        public var attributes: Attributes
        /// DIR_NTRes (offset 12): 0x08 = base name in lower case, 0x10 = extension in lower case.
        public var caseFlags: UInt8
        /// DIR_CrtTimeTenth (offset 13): 10 ms units, 0...199.
        public var createTimeHundredths: UInt8
        /// DIR_CrtTime (offset 14), DIR_CrtDate (offset 16).
        public var createTime: UInt16
        public var createDate: UInt16
        /// DIR_LstAccDate (offset 18).
        public var accessDate: UInt16
        /// DIR_FstClusHI (offset 20): high 16 bits of the first cluster (FAT32 only).
        public var firstClusterHigh: UInt16
        /// DIR_WrtTime (offset 22), DIR_WrtDate (offset 24).
        public var writeTime: UInt16
        public var writeDate: UInt16
        /// DIR_FstClusLO (offset 26).
        public var firstClusterLow: UInt16
        /// DIR_FileSize (offset 28).
        public var fileSize: UInt32

        public init(_ c: ByteCursor, at o: Int) throws {
            name = try c.array(at: o, count: 11)
            attributes = Attributes(rawValue: try c.u8(at: o + 11))
            caseFlags = try c.u8(at: o + 12)
            createTimeHundredths = try c.u8(at: o + 13)
            createTime = try c.u16le(at: o + 14)
            createDate = try c.u16le(at: o + 16)
            accessDate = try c.u16le(at: o + 18)
            firstClusterHigh = try c.u16le(at: o + 20)
            writeTime = try c.u16le(at: o + 22)
            writeDate = try c.u16le(at: o + 24)
            firstClusterLow = try c.u16le(at: o + 26)
            fileSize = try c.u32le(at: o + 28)
        }

        /// Free (0x00) or deleted (0xE5): Linux's IS_FREE.
        public var isFree: Bool { name[0] == 0x00 || name[0] == 0xE5 }
        public var isLongName: Bool { attributes.rawValue & 0x3F == Attributes.longName.rawValue }
        public var isDirectory: Bool { attributes.contains(.directory) }
        public var isVolumeLabel: Bool { !isLongName && attributes.contains(.volumeID) }
        /// "." or "..".
        public var isDotEntry: Bool {
            name == [0x2E] + [UInt8](repeating: 0x20, count: 10) || name == [0x2E, 0x2E] + [UInt8](repeating: 0x20, count: 9)
        }

        /// The first cluster; DIR_FstClusHI only counts on FAT32 (Linux's fat_get_start).
        func firstCluster(_ kind: Kind) -> UInt32 {
            kind == .fat32 ? UInt32(firstClusterHigh) << 16 | UInt32(firstClusterLow) : UInt32(firstClusterLow)
        }

        /// The checksum long-name entries carry (spec: ChkSum over the 11 name bytes).
        public var checksum: UInt8 { FAT.checksum(name) }

        /// The name as Linux shows it with `shortname=mixed` (display like Windows NT: the case
        /// flags lower the base and extension), code page 437 bytes converted to UTF-8.
        public var displayName: String {
            shortNameText(name, lowercaseBase: caseFlags & 0x08 != 0, lowercaseExtension: caseFlags & 0x10 != 0)
        }
    }

    /// One 32-byte long-name (VFAT) entry.
    public struct LongNameEntry: Sendable, Equatable {
        /// LDIR_Ord (offset 0): sequence number 1...20, 0x40 on the last (first stored) slot.
        public var order: UInt8
        /// LDIR_Chksum (offset 13): checksum of the short name this long name belongs to.
        public var checksum: UInt8
        /// LDIR_Name1 (offset 1, 5 units), LDIR_Name2 (offset 14, 6 units), LDIR_Name3 (offset 28,
        /// 2 units): 13 UTF-16LE code units.
        public var units: [UInt16]

        public init(_ c: ByteCursor, at o: Int) throws {
            order = try c.u8(at: o)
            checksum = try c.u8(at: o + 13)
            var u: [UInt16] = []
            u.reserveCapacity(13)
            for i in 0..<5 { u.append(try c.u16le(at: o + 1 + 2 * i)) }
            for i in 0..<6 { u.append(try c.u16le(at: o + 14 + 2 * i)) }
            for i in 0..<2 { u.append(try c.u16le(at: o + 28 + 2 * i)) }
            units = u
        }

        public var isLast: Bool { order & 0x40 != 0 }
        public var sequence: Int { Int(order & 0x3F) }
    }

    /// Long names span at most 20 entries (255 UTF-16 units).
    static let maximumLongNameSlots = 20

    /// The spec's ChkSum: rotate right by one, add the next byte.
    public static func checksum(_ name: [UInt8]) -> UInt8 {
        var sum: UInt8 = 0
        for b in name { sum = ((sum & 1) << 7) &+ (sum >> 1) &+ b }
        return sum
    }

    /// Text of an 8.3 name: base (trailing spaces dropped), "." and extension when there is one;
    /// ASCII letters lowered as the flags say; bytes 0x80... decoded as code page 437 (Linux's
    /// default `codepage=437`). A label keeps its 11 bytes as one name.
    static func shortNameText(_ raw: [UInt8], lowercaseBase: Bool, lowercaseExtension: Bool, asLabel: Bool = false) -> String {
        func lowered(_ bytes: ArraySlice<UInt8>, _ lower: Bool) -> [UInt8] {
            bytes.map { lower && (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
        }
        // Linux stops each part at a NUL byte and drops trailing spaces.
        func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
            var end = bytes.firstIndex(of: 0) ?? bytes.endIndex
            while end > bytes.startIndex, bytes[end - 1] == 0x20 { end -= 1 }
            return bytes[bytes.startIndex..<end]
        }
        var name = raw
        if name.first == 0x05 { name[0] = 0xE5 }
        var bytes: [UInt8]
        if asLabel {
            bytes = Array(trimmed(name[...]))
        } else {
            bytes = lowered(trimmed(name.prefix(8)), lowercaseBase)
            let ext = lowered(trimmed(name.dropFirst(8).prefix(3)), lowercaseExtension)
            if !ext.isEmpty { bytes += [0x2E] + ext }
        }
        var scalars = String.UnicodeScalarView()
        for b in bytes {
            let value = b < 0x80 ? UInt32(b) : UInt32(codePage437High[Int(b - 0x80)])
            if let s = Unicode.Scalar(value) { scalars.append(s) }
        }
        return String(scalars)
    }

    /// Code page 437, bytes 0x80...0xFF, as Unicode code points.
    static let codePage437High: [UInt16] = [
        0x00C7, 0x00FC, 0x00E9, 0x00E2, 0x00E4, 0x00E0, 0x00E5, 0x00E7, 0x00EA, 0x00EB, 0x00E8, 0x00EF, 0x00EE, 0x00EC, 0x00C4, 0x00C5,
        0x00C9, 0x00E6, 0x00C6, 0x00F4, 0x00F6, 0x00F2, 0x00FB, 0x00F9, 0x00FF, 0x00D6, 0x00DC, 0x00A2, 0x00A3, 0x00A5, 0x20A7, 0x0192,
        0x00E1, 0x00ED, 0x00F3, 0x00FA, 0x00F1, 0x00D1, 0x00AA, 0x00BA, 0x00BF, 0x2310, 0x00AC, 0x00BD, 0x00BC, 0x00A1, 0x00AB, 0x00BB,
        0x2591, 0x2592, 0x2593, 0x2502, 0x2524, 0x2561, 0x2562, 0x2556, 0x2555, 0x2563, 0x2551, 0x2557, 0x255D, 0x255C, 0x255B, 0x2510,
        0x2514, 0x2534, 0x252C, 0x251C, 0x2500, 0x253C, 0x255E, 0x255F, 0x255A, 0x2554, 0x2569, 0x2566, 0x2560, 0x2550, 0x256C, 0x2567,
        0x2568, 0x2564, 0x2565, 0x2559, 0x2558, 0x2552, 0x2553, 0x256B, 0x256A, 0x2518, 0x250C, 0x2588, 0x2584, 0x258C, 0x2590, 0x2580,
        0x03B1, 0x00DF, 0x0393, 0x03C0, 0x03A3, 0x03C3, 0x00B5, 0x03C4, 0x03A6, 0x0398, 0x03A9, 0x03B4, 0x221E, 0x03C6, 0x03B5, 0x2229,
        0x2261, 0x00B1, 0x2265, 0x2264, 0x2320, 0x2321, 0x00F7, 0x2248, 0x00B0, 0x2219, 0x00B7, 0x221A, 0x207F, 0x00B2, 0x25A0, 0x00A0,
    ]

    /// A long name's UTF-16 units up to the first NUL, as UTF-8 (unpaired surrogates become
    /// U+FFFD).
    static func longNameUTF8(_ units: [UInt16]) -> [UInt8] {
        let end = units.firstIndex(of: 0) ?? units.endIndex
        return Array(String(decoding: units[..<end], as: UTF16.self).utf8)
    }

    /// Collects the long-name slots in front of a short entry, as Linux's fat_parse_long does:
    /// a run must start with the 0x40 slot, count down without gaps and share one checksum; any
    /// break discards it, and the short entry's checksum must match for the name to be used.
    struct LongNameAssembler {
        private var units: [UInt16] = []
        private var expected = 0
        private var checksum: UInt8 = 0
        private var active = false

        mutating func reset() { active = false; units = []; expected = 0 }

        mutating func add(_ e: LongNameEntry) {
            if e.isLast {
                let slots = e.sequence
                guard slots >= 1, slots <= FAT.maximumLongNameSlots else { reset(); return }
                units = [UInt16](repeating: 0xFFFF, count: slots * 13)
                checksum = e.checksum
                active = true
                expected = slots
            } else if !active || e.sequence != expected || e.checksum != checksum {
                reset()
                return
            }
            let start = (e.sequence - 1) * 13
            units.replaceSubrange(start..<(start + 13), with: e.units)
            expected -= 1
        }

        /// The long name for this short entry, if a complete run with a matching checksum
        /// preceded it; resets for the next entry either way.
        mutating func finish(for short: ShortEntry) -> [UInt8]? {
            defer { reset() }
            guard active, expected == 0, checksum == short.checksum else { return nil }
            let name = FAT.longNameUTF8(units)
            return name.isEmpty ? nil : name
        }
    }
}
