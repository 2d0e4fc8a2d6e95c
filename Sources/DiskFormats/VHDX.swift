import DiskImage

/// A VHDX image (MS-VHDX), fixed or dynamic. A log that still needs replaying and differencing
/// images (with a parent) are refused with a clear error.
final class VHDXImage: DiskContainerSource {
    let file: any ByteSource
    let name: String
    let size: UInt64
    let format = "vhdx"
    private let blockSize: UInt64
    private let chunkRatio: UInt64
    private let bat: [UInt64]

    static let batGUID = guidBytes("2DC27766-F623-4200-9D64-115E9BFD4A08")
    static let metadataGUID = guidBytes("8B7CA206-4790-4B9A-B8FE-575F050F886E")
    static let fileParametersGUID = guidBytes("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
    static let virtualDiskSizeGUID = guidBytes("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
    static let logicalSectorSizeGUID = guidBytes("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")

    /// A GUID as stored on disk: the first three groups little-endian, the rest as written.
    static func guidBytes(_ text: String) -> [UInt8] {
        let hex = Array(text.replacingDashes().utf8)
        var raw: [UInt8] = []
        var i = 0
        while i + 1 < hex.count {
            raw.append(UInt8(String(decoding: hex[i...i + 1], as: UTF8.self), radix: 16) ?? 0)
            i += 2
        }
        guard raw.count == 16 else { return raw }
        return [raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6]] + raw[8...]
    }

    init(_ file: any ByteSource) throws {
        self.file = file
        let name = file.name
        self.name = name
        // The two headers (64 KiB and 128 KiB): the valid one with the higher sequence number.
        var best: (seq: UInt64, header: ByteCursor)? = nil
        for at: UInt64 in [64 << 10, 128 << 10] {
            guard let h = try? file.record(at: at, count: 4096, "VHDX header") else { continue }   // an unreadable copy is an invalid one: the other decides, neither valid throws below
            guard h.matches(Array("head".utf8), at: 0) else { continue }
            var zeroed = h.bytes
            for i in 4..<8 { zeroed[i] = 0 }
            guard CRC32C.checksum(zeroed) == (try h.u32le(at: 4)) else { continue }
            let seq = try h.u64le(at: 8)
            if best == nil || seq > best!.seq { best = (seq, h) }
        }
        guard let header = best?.header else {
            throw FWError(.corrupt, "VHDX: neither header (offsets 65536 and 131072) is valid", disk: name)
        }
        guard try header.array(at: 48, count: 16).allSatisfy({ $0 == 0 }) else {
            throw FWError(.unsupported, "VHDX: the log must be replayed first (the image was not closed cleanly); open it once with Hyper-V or qemu-img check -r all", disk: name)
        }
        // Region table at 192 KiB: BAT and metadata regions.
        let r = try file.record(at: 192 << 10, count: 64 << 10, "VHDX region table")
        guard try r.array(at: 0, count: 4) == Array("regi".utf8) else {
            throw FWError(.corrupt, "VHDX region table at offset 196608: bad signature", disk: name)
        }
        let regionCount = Int(try r.u32le(at: 8))
        guard regionCount <= 2047 else { throw FWError(.corrupt, "VHDX region table: \(regionCount) entries", disk: name) }
        var batRegion: (UInt64, UInt64)? = nil, metaRegion: (UInt64, UInt64)? = nil
        for i in 0..<regionCount {
            let base = 16 + i * 32
            let guid = try r.array(at: base, count: 16)
            let region = (try r.u64le(at: base + 16), UInt64(try r.u32le(at: base + 24)))
            if guid == Self.batGUID { batRegion = region }
            else if guid == Self.metadataGUID { metaRegion = region }
            else if try r.u32le(at: base + 28) & 1 != 0 {
                throw FWError(.unsupported, "VHDX: unknown required region", disk: name)
            }
        }
        guard let batRegion, let metaRegion else {
            throw FWError(.corrupt, "VHDX region table: no BAT or metadata region", disk: name)
        }
        // Metadata table: file parameters, virtual disk size, logical sector size.
        let m = try file.record(at: metaRegion.0, count: 64 << 10, "VHDX metadata table")
        guard try m.array(at: 0, count: 8) == Array("metadata".utf8) else {
            throw FWError(.corrupt, "VHDX metadata table at offset \(metaRegion.0): bad signature", disk: name)
        }
        var items: [[UInt8]: (UInt64, Int)] = [:]
        for i in 0..<Int(try m.u16le(at: 10)) {
            let base = 32 + i * 32
            let at = try checkedAdd(metaRegion.0, UInt64(try m.u32le(at: base + 16)), "VHDX metadata item offset", disk: name)
            items[try m.array(at: base, count: 16)] = (at, Int(try m.u32le(at: base + 20)))
        }
        func item(_ guid: [UInt8], _ what: String, _ length: Int) throws -> ByteCursor {
            guard let (at, len) = items[guid], len >= length else {
                throw FWError(.corrupt, "VHDX metadata: no \(what) item", disk: name)
            }
            return try file.record(at: at, count: length, "VHDX \(what)")
        }
        let params = try item(Self.fileParametersGUID, "file parameters", 8)
        let blockSize = UInt64(try params.u32le(at: 0))
        if try params.u32le(at: 4) & 2 != 0 {
            throw FWError(.unsupported, "VHDX: differencing images (with a parent) are not supported yet", disk: name)
        }
        let size = try item(Self.virtualDiskSizeGUID, "virtual disk size", 8).u64le(at: 0)
        let sectorSize = UInt64(try item(Self.logicalSectorSizeGUID, "logical sector size", 4).u32le(at: 0))
        guard blockSize >= 1 << 20, blockSize <= 256 << 20, blockSize & (blockSize - 1) == 0,
              sectorSize == 512 || sectorSize == 4096 else {
            throw FWError(.corrupt, "VHDX metadata: block size \(blockSize), logical sector size \(sectorSize)", disk: name)
        }
        let chunkRatio = (UInt64(1) << 23) * sectorSize / blockSize
        let dataBlocks = (size + blockSize - 1) / blockSize
        let entries = dataBlocks + (dataBlocks == 0 ? 0 : (dataBlocks - 1) / chunkRatio)
        guard entries * 8 <= batRegion.1, entries <= 8 << 20 else {
            throw FWError(.corrupt, "VHDX BAT at offset \(batRegion.0): \(batRegion.1) bytes cannot hold \(entries) entries", disk: name)
        }
        let b = try file.record(at: batRegion.0, count: Int(entries) * 8, "VHDX BAT")
        bat = try (0..<Int(entries)).map { try b.u64le(at: $0 * 8) }
        self.size = size
        self.blockSize = blockSize
        self.chunkRatio = chunkRatio
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try readBlockMapped(file: file, size: size, blockSize: blockSize, what: "VHDX", at: offset, into: buffer) { block in
            let index = block + block / chunkRatio
            let entry = bat[Int(index)]
            switch entry & 7 {
            case 0, 1, 2, 3: return .zero
            case 6: return .host((entry >> 20) << 20)
            default:
                throw FWError(.unsupported, "VHDX BAT entry \(index): block state \(entry & 7) is not supported", disk: name)
            }
        }
    }
}

extension String {
    func replacingDashes() -> String { String(self.filter { $0 != "-" }) }
}

/// CRC-32C (Castagnoli), as VHDX checksums its headers and tables.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
