import DiskImage

/// UBI, the volume layer of raw NAND (and some NOR) flash (linux drivers/mtd/ubi/ubi-media.h):
/// the flash is a row of physical erase blocks (PEBs); each starts with an erase-counter (EC)
/// header ("UBI#") that gives the offsets of the volume-id (VID) header ("UBI!") and of the
/// data. A VID header says which logical erase block (LEB) of which volume the PEB holds; a
/// LEB written again lives in a new PEB with a higher sequence number. The volume table is the
/// layout volume's LEB 0 (LEB 1 a copy). All integers are big-endian; CRCs are Linux's
/// `crc32(0xFFFFFFFF, ...)`.
public enum UBI {
    static let headerSize = 64
    /// `UBI_LAYOUT_VOLUME_ID`.
    static let layoutVolume: UInt32 = 0x7FFF_EFFF
    /// `UBI_MAX_VOLUMES`.
    static let maximumVolumes = 128
    /// `UBI_VTBL_RECORD_SIZE`.
    static let volumeRecordSize = 172
    /// Largest PEB the detection tries (NAND erase blocks are 16 KiB to 4 MiB).
    static let maximumPEBSize: UInt64 = 16 << 20

    static func crc(_ bytes: ArraySlice<UInt8>) -> UInt32 { CRC32.kernel(bytes, seed: 0xFFFF_FFFF) }

    /// Whether a 64-byte EC or VID header's `hdr_crc` (big-endian at 60) is the CRC of bytes 0..<60.
    static func crcHolds(_ b: [UInt8]) -> Bool {
        b.count >= headerSize && b[60..<64].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } == crc(b[0..<60])
    }

    /// `struct ubi_ec_hdr` (64 bytes).
    public struct ECHeader: Header, Sendable, Equatable {
        static let magic: [UInt8] = Array("UBI#".utf8)
        static let context = "UBI EC header"

        public var version: UInt8           // 4
        public var eraseCount: UInt64       // 8 ec
        public var vidHeaderOffset: UInt32  // 16 vid_hdr_offset
        public var dataOffset: UInt32       // 20 data_offset
        public var imageSequence: UInt32    // 24 image_seq
        // 60 hdr_crc: crc of bytes 0..<60

        init(decoding c: ByteCursor) throws {
            version = try c.u8(at: 4)
            eraseCount = try c.u64be(at: 8)
            vidHeaderOffset = try c.u32be(at: 16)
            dataOffset = try c.u32be(at: 20)
            imageSequence = try c.u32be(at: 24)
        }
    }

    /// `struct ubi_vid_hdr` (64 bytes).
    struct VIDHeader: Header {
        static let magic: [UInt8] = Array("UBI!".utf8)
        static let context = "UBI VID header"
        var volumeType: UInt8   // 5 vol_type: 1 dynamic, 2 static
        var copyFlag: UInt8     // 6 copy_flag: written by wear-levelling (data CRC valid)
        var volumeID: UInt32    // 8 vol_id
        var lnum: UInt32        // 12
        var dataSize: UInt32    // 20 data_size (static volumes and copies)
        var usedEBs: UInt32     // 24 used_ebs (static volumes)
        var dataPad: UInt32     // 28 data_pad
        var dataCRC: UInt32     // 32 data_crc
        var sequence: UInt64    // 40 sqnum
        // 60 hdr_crc

        init(decoding c: ByteCursor) throws {
            volumeType = try c.u8(at: 5)
            copyFlag = try c.u8(at: 6)
            volumeID = try c.u32be(at: 8)
            lnum = try c.u32be(at: 12)
            dataSize = try c.u32be(at: 20)
            usedEBs = try c.u32be(at: 24)
            dataPad = try c.u32be(at: 28)
            dataCRC = try c.u32be(at: 32)
            sequence = try c.u64be(at: 40)
        }
    }

    /// One volume of the volume table (`struct ubi_vtbl_record`).
    public struct Volume: Sendable, Equatable {
        public var id: Int
        public var name: String
        /// `reserved_pebs` (0 at 0): LEBs the volume may use.
        public var reservedPEBs: UInt32
        public var alignment: UInt32
        public var dataPad: UInt32
        /// `vol_type` (12): 1 dynamic, 2 static.
        public var isStatic: Bool
        /// `upd_marker` (13): an update was interrupted; the contents are not valid.
        public var updateMarker: Bool
        /// `flags` (144): 1 = autoresize.
        public var flags: UInt8
    }

    /// An EC or VID header: 64 bytes that start with its magic, `hdr_crc` at 60.
    protocol Header {
        static var magic: [UInt8] { get }
        /// What its fields' errors are called.
        static var context: String { get }
        init(decoding c: ByteCursor) throws
    }

    /// Whether `head` (the first bytes of a source) starts with a valid UBI EC header.
    public static func hasECHeader(_ head: [UInt8]) -> Bool { ECHeader(Array(head.prefix(headerSize))) != nil }
}

extension UBI.Header {
    /// The header at the start of `b`; nil unless it starts with the magic and its CRC holds.
    init?(_ b: [UInt8]) {
        guard b.count >= UBI.headerSize, Array(b[0..<4]) == Self.magic, UBI.crcHolds(b) else { return nil }
        do {
            self = try Self(decoding: ByteCursor(b, context: Self.context))
        } catch {
            return nil   // cannot happen: the 64 bytes are there
        }
    }
}

/// A UBI image attached in userspace: every PEB's headers read once, each volume's LEBs
/// mapped to the PEB holding the newest valid copy.
public final class UBIImage: Sendable {
    public let source: any ByteSource
    public let pebSize: UInt64
    public let vidHeaderOffset: UInt64
    public let dataOffset: UInt64
    public var lebSize: UInt64 { pebSize - dataOffset }
    public let pebCount: Int
    public let volumes: [UBI.Volume]
    /// What attaching passed over (bad headers, blank PEBs, bad copies), for the inspection.
    public let warnings: [String]
    /// Per volume id: LEB number -> PEB number; and the data size of static volumes' LEBs.
    let maps: [Int: [Int32]]
    let staticSizes: [Int: UInt64]

    /// The NAND spare (OOB) layout stripped from the dump before attaching, nil when the dump
    /// has none.
    public let spare: FlashGeometry?

    /// Attaches the UBI image that starts at byte 0 of `source`; nil when there is no valid EC
    /// header there. A dump that keeps the NAND spare bytes after every page is read through an
    /// `OOBStrippedSource`: with `geometry` when given, else with the first common layout
    /// (`FlashGeometry.common`) under which the first PEB's VID header or the next PEB's EC
    /// header appears where the EC header says.
    public static func attach(_ source: any ByteSource, geometry: FlashGeometry? = nil) throws -> UBIImage? {
        guard source.size >= UInt64(UBI.headerSize),
              let ec = UBI.ECHeader(try source.bytes(at: 0, count: UBI.headerSize)) else { return nil }
        if let geometry {
            return try UBIImage(source: OOBStrippedSource(base: source, geometry: geometry), first: ec, spare: geometry)
        }
        if try !looksContiguous(source, ec) {
            for candidate in FlashGeometry.common {
                let view = OOBStrippedSource(base: source, geometry: candidate)
                if try looksContiguous(view, ec) { return try UBIImage(source: view, first: ec, spare: candidate) }
            }
        }
        return try UBIImage(source: source, first: ec, spare: nil)
    }

    /// Whether the headers after the first EC header are where it says: a VID header at its
    /// offset, or (PEB 0 holding no LEB) an EC header at the start of the next PEB.
    private static func looksContiguous(_ source: any ByteSource, _ ec: UBI.ECHeader) throws -> Bool {
        let vid = UInt64(ec.vidHeaderOffset)
        if vid + UInt64(UBI.headerSize) <= source.size, UBI.VIDHeader(try source.bytes(at: vid, count: UBI.headerSize)) != nil {
            return true
        }
        return try secondECHeader(source, dataOffset: UInt64(ec.dataOffset)) != nil
    }

    private struct Copy {
        var peb: Int
        var vid: UBI.VIDHeader
    }

    private init(source: any ByteSource, first ec: UBI.ECHeader, spare: FlashGeometry?) throws {
        self.source = source
        self.spare = spare
        let place = source.place
        guard ec.vidHeaderOffset >= UInt32(UBI.headerSize), ec.dataOffset >= ec.vidHeaderOffset + UInt32(UBI.headerSize) else {
            throw FWError(.corrupt, "UBI EC header gives VID header offset \(ec.vidHeaderOffset) and data offset \(ec.dataOffset), which overlap", at: place)
        }
        vidHeaderOffset = UInt64(ec.vidHeaderOffset)
        dataOffset = UInt64(ec.dataOffset)
        pebSize = try Self.findPEBSize(source, dataOffset: dataOffset)
        pebCount = Int(source.size / pebSize)
        var notes: [String] = []
        if source.size % pebSize != 0 {
            notes.append("the image size (\(source.size) bytes) is not a multiple of the \(pebSize)-byte erase block; the last \(source.size % pebSize) bytes are ignored")
        }
        // Every PEB's VID header, grouped by (volume, LEB).
        var copies: [UInt64: [Copy]] = [:]
        var bad = 0, blank = 0
        for peb in 0..<pebCount {
            try Task.checkCancellation()
            let base = UInt64(peb) * pebSize
            let ecBytes = try source.bytes(at: base, count: UBI.headerSize)
            let vidBytes = try source.bytes(at: base + vidHeaderOffset, count: UBI.headerSize)
            let ecBlank = ecBytes.allSatisfy { $0 == 0xFF }
            let ecValid = UBI.ECHeader(ecBytes) != nil
            // Linux still uses a PEB whose EC header is damaged when its VID header is good.
            guard let vid = UBI.VIDHeader(vidBytes) else {
                let vidBlank = vidBytes.allSatisfy { $0 == 0xFF }
                if ecBlank && vidBlank { blank += 1 } else if !ecValid || !vidBlank { bad += 1 }
                continue
            }
            if !ecValid { bad += 1 }
            guard Int(vid.volumeID) < UBI.maximumVolumes || vid.volumeID == UBI.layoutVolume else { continue }
            copies[UInt64(vid.volumeID) << 32 | UInt64(vid.lnum), default: []].append(Copy(peb: peb, vid: vid))
        }
        if bad > 0 { notes.append("\(bad) erase block(s) with a bad EC or VID header (magic or CRC)") }
        if blank > 0 { notes.append("\(blank) erased (blank) erase block(s)") }

        var chosen: [UInt64: Copy] = [:]
        for (key, list) in copies {
            if let copy = try Self.newestValid(list, source: source, pebSize: pebSize, dataOffset: dataOffset, notes: &notes) {
                chosen[key] = copy
            }
        }
        let vtbl = try Self.volumeTable(chosen, source: source, pebSize: pebSize, dataOffset: dataOffset, lebSize: pebSize - dataOffset)
        volumes = vtbl
        var maps: [Int: [Int32]] = [:]
        var staticSizes: [Int: UInt64] = [:]
        for volume in vtbl {
            // The map covers the LEBs up to the highest one mapped (at most one per PEB), not
            // every reserved LEB: a volume table may claim 2^32 of them.
            let mine = chosen.filter { $0.key >> 32 == UInt64(volume.id) }
            let highest = mine.values.map { Int($0.vid.lnum) }.filter { $0 < Int(volume.reservedPEBs) }.max() ?? -1
            var map = [Int32](repeating: -1, count: highest + 1)
            var lastStatic: (lnum: Int, size: UInt64, used: Int)?
            for (_, copy) in mine {
                let lnum = Int(copy.vid.lnum)
                guard lnum < map.count else {
                    notes.append("volume \(volume.id) (\(volume.name)): LEB \(lnum) is beyond its \(volume.reservedPEBs) reserved erase blocks")
                    continue
                }
                map[lnum] = Int32(copy.peb)
                if volume.isStatic, lnum > (lastStatic?.lnum ?? -1) {
                    lastStatic = (lnum, UInt64(copy.vid.dataSize), Int(copy.vid.usedEBs))
                }
            }
            let leb = pebSize - dataOffset
            let usable = UInt64(volume.dataPad) < leb ? leb - UInt64(volume.dataPad) : 0
            if volume.isStatic, usable > 0, let last = lastStatic {
                let used = min(last.used, Int(volume.reservedPEBs))
                staticSizes[volume.id] = last.lnum == used - 1 ? UInt64(used - 1) * usable + min(last.size, usable) : UInt64(used) * usable
            }
            maps[volume.id] = map
        }
        self.maps = maps
        self.staticSizes = staticSizes
        warnings = notes
    }

    /// The PEB size: the smallest power of two past the data offset with a valid EC header at
    /// one of its first odd multiples (so one blank or bad PEB does not hide it). An image of a
    /// single PEB is one PEB long.
    static func findPEBSize(_ source: any ByteSource, dataOffset: UInt64) throws -> UInt64 {
        if let size = try secondECHeader(source, dataOffset: dataOffset) { return size }
        guard source.size <= UBI.maximumPEBSize, source.size > dataOffset else {
            throw FWError(.corrupt, "UBI: no second erase-counter header found, cannot tell the erase block size", at: source.place)
        }
        return source.size
    }

    /// The PEB size `findPEBSize` finds, nil when no second EC header is found.
    static func secondECHeader(_ source: any ByteSource, dataOffset: UInt64) throws -> UInt64? {
        var k: UInt64 = 4096
        while k <= dataOffset { k <<= 1 }
        while k <= UBI.maximumPEBSize, k < source.size {
            for multiple in [UInt64(1), 3, 5] where k * multiple + UInt64(UBI.headerSize) <= source.size {
                if UBI.ECHeader(try source.bytes(at: k * multiple, count: UBI.headerSize)) != nil { return k }
            }
            k <<= 1
        }
        return nil
    }

    /// The newest copy of a LEB by sequence number whose data is valid: a copy written by
    /// wear-levelling (copy_flag) or of a static volume carries a data CRC, checked here; a bad
    /// one falls back to the older copy, as ubi_compare_lebs does.
    private static func newestValid(_ list: [Copy], source: any ByteSource, pebSize: UInt64, dataOffset: UInt64,
                                    notes: inout [String]) throws -> Copy? {
        for copy in list.sorted(by: { $0.vid.sequence > $1.vid.sequence }) {
            guard copy.vid.copyFlag != 0 || copy.vid.volumeType == 2 else { return copy }
            let size = UInt64(copy.vid.dataSize)
            guard size <= pebSize - dataOffset else {
                notes.append("PEB \(copy.peb): data size \(size) is larger than the erase block"); continue
            }
            let data = try source.bytes(at: UInt64(copy.peb) * pebSize + dataOffset, count: Int(size))
            if UBI.crc(data[...]) == copy.vid.dataCRC { return copy }
            notes.append("PEB \(copy.peb) (volume \(copy.vid.volumeID) LEB \(copy.vid.lnum)): bad data CRC, an older copy is used if there is one")
        }
        return nil
    }

    /// The volume table from the layout volume's LEB 0, or LEB 1 when LEB 0 is damaged.
    private static func volumeTable(_ chosen: [UInt64: Copy], source: any ByteSource, pebSize: UInt64,
                                    dataOffset: UInt64, lebSize: UInt64) throws -> [UBI.Volume] {
        let count = min(UBI.maximumVolumes, Int(lebSize) / UBI.volumeRecordSize)
        var lastError = "the layout volume (the volume table) has no LEB"
        for lnum in [UInt64(0), 1] {
            guard let copy = chosen[UInt64(UBI.layoutVolume) << 32 | lnum] else { continue }
            let table = try source.bytes(at: UInt64(copy.peb) * pebSize + dataOffset, count: count * UBI.volumeRecordSize)
            do {
                return try (0..<count).compactMap { try volumeRecord(Array(table[($0 * UBI.volumeRecordSize)..<(($0 + 1) * UBI.volumeRecordSize)]), id: $0) }
            } catch let error as FWError {
                lastError = "volume table LEB \(lnum): \(error.message)"
            }
        }
        throw FWError(.corrupt, "UBI: \(lastError)", at: source.place)
    }

    private static func volumeRecord(_ r: [UInt8], id: Int) throws -> UBI.Volume? {
        let c = ByteCursor(r, context: "UBI volume table record \(id)")
        guard try c.u32be(at: 168) == UBI.crc(r[0..<168]) else {
            throw FWError.corrupt("record \(id) has a bad CRC")
        }
        let reserved = try c.u32be(at: 0)
        guard reserved > 0 else { return nil }
        let nameLength = Int(try c.u16be(at: 14))
        guard nameLength <= 127 else { throw FWError.corrupt("record \(id) has a \(nameLength)-byte name") }
        return UBI.Volume(id: id, name: String(decoding: r[16..<(16 + nameLength)], as: UTF8.self), reservedPEBs: reserved,
                          alignment: try c.u32be(at: 4), dataPad: try c.u32be(at: 8), isStatic: r[12] == 2,
                          updateMarker: r[13] != 0, flags: r[144])
    }

    /// The bytes of one volume, LEB by LEB (unmapped LEBs read as 0xFF, as UBI reads them).
    public func volume(_ id: Int, place: FWError.Place) throws -> UBIVolume {
        guard let volume = volumes.first(where: { $0.id == id }), let map = maps[id] else {
            throw FWError(.notFound, "UBI has no volume \(id)", at: source.place)
        }
        let usable = UInt64(volume.dataPad) < lebSize ? lebSize - UInt64(volume.dataPad) : 0
        guard usable > 0 else { throw FWError(.corrupt, "UBI volume \(id): data_pad leaves no room in a LEB", at: source.place) }
        let size = staticSizes[id] ?? UInt64(volume.reservedPEBs) * usable
        return UBIVolume(image: self, map: map, usableLEBSize: usable, size: size, place: place)
    }
}

/// One UBI volume as a `ByteSource`: offsets map to LEBs, LEBs to their PEB's data area.
public final class UBIVolume: ByteSource {
    public let image: UBIImage
    let map: [Int32]
    let usableLEBSize: UInt64
    public let size: UInt64
    public let place: FWError.Place
    public var name: String { place.description }

    init(image: UBIImage, map: [Int32], usableLEBSize: UInt64, size: UInt64, place: FWError.Place) {
        self.image = image
        self.map = map
        self.usableLEBSize = usableLEBSize
        self.size = size
        self.place = place
    }

    /// Number of LEBs that hold data (mapped to a PEB).
    public var mappedLEBCount: Int { map.filter { $0 >= 0 }.count }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try readInPieces(size: size, at: offset, into: buffer) { position, rest in
            let lnum = Int(position / usableLEBSize)
            let within = position % usableLEBSize
            let count = Int(min(UInt64(rest.count), usableLEBSize - within))
            let piece = UnsafeMutableRawBufferPointer(rebasing: rest[0..<count])
            guard lnum < map.count, map[lnum] >= 0 else {
                piece.initializeMemory(as: UInt8.self, repeating: 0xFF)
                return count
            }
            let at = UInt64(map[lnum]) * image.pebSize + image.dataOffset + within
            return try image.source.read(at: at, into: piece)
        }
    }
}

extension UBIImage {
    /// The volumes as partitions: number = volume id + 1, the volume's name, its size in whole
    /// 512-byte units (the volume's own source has its exact size) from byte 0 (a volume is not a range of the image: open it with
    /// `volume(_:place:)`), type "ubi-static" or "ubi-dynamic".
    public func partitionTable() -> PartitionTable {
        var notes = warnings
        if let spare {
            notes.insert("NAND spare (OOB) bytes stripped: \(spare.spareSize) after every \(spare.pageSize)-byte page", at: 0)
        }
        let partitions = volumes.map { v -> Partition in
            let usable = lebSize - min(lebSize, UInt64(v.dataPad))
            let bytes = staticSizes[v.id] ?? UInt64(v.reservedPEBs) * usable
            if v.updateMarker { notes.append("volume \(v.id) (\(v.name)): an update was interrupted (upd_marker); Linux refuses to read it") }
            return Partition(index: v.id + 1, firstSector: 0, sectorCount: bytes / 512, sectorSize: 512,
                             type: v.isStatic ? "ubi-static" : "ubi-dynamic",
                             typeName: v.isStatic ? "UBI static volume" : "UBI dynamic volume", name: v.name)
        }
        return PartitionTable(kind: .ubi, sectorSize: 512, diskID: nil, partitions: partitions, warnings: notes)
    }
}

/// A NAND page layout: `pageSize` data bytes followed by `spareSize` spare (OOB) bytes, as a
/// dump made with the spare area reads (`--flash-geometry 2048+64`).
public struct FlashGeometry: Sendable, Equatable, CustomStringConvertible {
    public var pageSize: Int
    public var spareSize: Int

    public init(pageSize: Int, spareSize: Int) {
        self.pageSize = pageSize
        self.spareSize = spareSize
    }

    /// Parses "PAGE+SPARE" ("2048+64"); nil when it is not two positive numbers (a page of 512
    /// bytes to 64 KiB, spare smaller than the page).
    public init?(parsing text: String) {
        let parts = text.split(separator: "+")
        guard parts.count == 2, let page = Int(parts[0]), let spare = Int(parts[1]),
              (512...65536).contains(page), spare > 0, spare < page else { return nil }
        self.init(pageSize: page, spareSize: spare)
    }

    public var description: String { "\(pageSize)+\(spareSize)" }

    /// The layouts NAND chips use, tried when a dump's UBI headers are not where they should be.
    public static let common: [FlashGeometry] = [
        (2048, 64), (2048, 128), (4096, 128), (4096, 224), (4096, 256), (512, 16), (8192, 256), (8192, 376),
        (8192, 436), (8192, 448), (8192, 640), (16384, 1280),
    ].map { FlashGeometry(pageSize: $0.0, spareSize: $0.1) }
}

/// A NAND dump's data bytes without the spare bytes after every page.
public final class OOBStrippedSource: ByteSource {
    public let base: any ByteSource
    public let geometry: FlashGeometry
    public let size: UInt64
    public var name: String { base.name }
    public var place: FWError.Place { base.place }

    public init(base: any ByteSource, geometry: FlashGeometry) {
        self.base = base
        self.geometry = geometry
        let stride = UInt64(geometry.pageSize + geometry.spareSize)
        size = base.size / stride * UInt64(geometry.pageSize) + min(UInt64(geometry.pageSize), base.size % stride)
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let page = UInt64(geometry.pageSize)
        let stride = page + UInt64(geometry.spareSize)
        return try readInPieces(size: size, at: offset, into: buffer) { position, rest in
            let within = position % page
            let count = Int(min(UInt64(rest.count), page - within))
            return try base.read(at: position / page * stride + within, into: UnsafeMutableRawBufferPointer(rebasing: rest[0..<count]))
        }
    }
}
