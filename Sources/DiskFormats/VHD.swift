import DiskImage

/// Where a block of a block-mapped virtual disk (VHD, VDI, VHDX, VMDK grains) lives.
enum BlockLocation {
    case zero
    case host(UInt64)
}

/// The read loop shared by the block-mapped formats: split a request at block boundaries and
/// read each piece from its host offset or as zeros.
func readBlockMapped(file: any ByteSource, size: UInt64, blockSize: UInt64, what: String,
                     at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer,
                     locate: (UInt64) throws -> BlockLocation) throws -> Int {
    try readInPieces(size: size, at: offset, into: buffer) { pos, rest in
        let block = pos / blockSize
        let within = pos % blockSize
        let n = Int(min(UInt64(rest.count), blockSize - within))
        let out = UnsafeMutableRawBufferPointer(rebasing: rest[0..<n])
        switch try locate(block) {
        case .zero:
            zeroFill(out)
        case .host(let host):
            let at = try checkedAdd(host, within, "\(what) block \(block) offset", disk: file.name)
            do {
                try file.readExactly(at: at, into: out)
            } catch let error as FWError {
                throw FWError(error.code, "\(what) block \(block) at offset \(host): \(error.message)", disk: file.name, cause: error)
            }
        }
        return n
    }
}

/// A VHD (Virtual PC) image: fixed (raw data + a 512-byte footer) or dynamic (BAT of 4-byte
/// big-endian sector numbers, each block preceded by its sector bitmap). Differencing images
/// (disk type 4) are not supported.
final class VHDImage: DiskContainerSource {
    let file: any ByteSource
    let name: String
    let size: UInt64
    let format = "vpc"
    private let fixed: Bool
    private let blockSize: UInt64
    private let bat: [UInt32]
    private let bitmapBytes: UInt64

    init(_ file: any ByteSource) throws {
        self.file = file
        name = file.name
        guard file.size >= 512 else { throw FWError(.corrupt, "VHD: file shorter than its footer", disk: name) }
        // The footer is at the end; dynamic disks keep a copy at offset 0.
        var footerOffset = file.size - 512
        if try file.bytes(at: footerOffset, count: 8) != DiskImageMagic.vhdCookie { footerOffset = 0 }
        let f = try file.record(at: footerOffset, count: 512, "VHD footer")
        // Footer: cookie 0, features 8, version 12, data offset 16, current size 48, disk type 60.
        let dataOffset = try f.u64be(at: 16)
        size = try f.u64be(at: 48)
        let type = try f.u32be(at: 60)
        switch type {
        case 2:
            fixed = true
            guard footerOffset == file.size - 512, size <= footerOffset else {
                throw FWError(.corrupt, "VHD footer: fixed disk of \(size) bytes does not fit in the \(file.size)-byte file", disk: name)
            }
            blockSize = 1 << 21
            bat = []
            bitmapBytes = 0
        case 3:
            fixed = false
            // Dynamic header ("cxsparse"): table offset 16, max table entries 28, block size 32.
            let d = try file.record(at: dataOffset, count: 1024, "VHD dynamic disk header")
            guard try d.array(at: 0, count: 8) == Array("cxsparse".utf8) else {
                throw FWError(.corrupt, "VHD dynamic disk header at offset \(dataOffset): bad cookie", disk: name)
            }
            let tableOffset = try d.u64be(at: 16)
            let entries = try d.u32be(at: 28)
            blockSize = UInt64(try d.u32be(at: 32))
            guard blockSize >= 512, blockSize <= 256 << 20, blockSize % 512 == 0 else {
                throw FWError(.corrupt, "VHD dynamic disk header at offset \(dataOffset): block size \(blockSize)", disk: name)
            }
            let needed = (size + blockSize - 1) / blockSize
            guard UInt64(entries) >= needed, entries <= 16 << 20 else {
                throw FWError(.corrupt, "VHD dynamic disk header at offset \(dataOffset): \(entries) BAT entries for \(size) bytes", disk: name)
            }
            let t = try file.record(at: tableOffset, count: Int(entries) * 4, "VHD block allocation table")
            bat = try (0..<Int(entries)).map { try t.u32be(at: $0 * 4) }
            let sectors = blockSize / 512
            bitmapBytes = ((sectors + 7) / 8 + 511) / 512 * 512
        case 4:
            throw FWError(.unsupported, "VHD: differencing disks are not supported yet", disk: name)
        default:
            throw FWError(.corrupt, "VHD footer at offset \(footerOffset + 60): disk type \(type)", disk: name)
        }
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try readBlockMapped(file: file, size: size, blockSize: blockSize, what: "VHD", at: offset, into: buffer) { block in
            if fixed { return .host(block * blockSize) }
            let sector = bat[Int(block)]
            if sector == 0xFFFF_FFFF { return .zero }
            return .host(UInt64(sector) * 512 + bitmapBytes)
        }
    }
}

/// A VirtualBox VDI image: static or dynamic, a block map of 4-byte little-endian block numbers
/// (0xFFFFFFFF free, 0xFFFFFFFE zero).
final class VDIImage: DiskContainerSource {
    let file: any ByteSource
    let name: String
    let size: UInt64
    let format = "vdi"
    private let blockSize: UInt64
    private let blockExtra: UInt64
    private let dataOffset: UInt64
    private let map: [UInt32]

    init(_ file: any ByteSource) throws {
        self.file = file
        name = file.name
        // Header (after the 64-byte text and the signature at 0x40): version 0x44, header
        // size 0x48, type 0x4C, offset of blocks 0x154, offset of data 0x158, disk size 0x170,
        // block size 0x178, block extra 0x17C, blocks 0x180.
        let h = try file.record(at: 0, count: 0x190, "VDI header")
        let version = try h.u32le(at: 0x44)
        guard version >> 16 == 1 else {
            throw FWError(.unsupported, "VDI version \(version >> 16).\(version & 0xFFFF) is not supported (1.x is)", disk: name)
        }
        let type = try h.u32le(at: 0x4C)
        guard type == 1 || type == 2 else {
            throw FWError(.unsupported, "VDI image type \(type) is not supported (1 dynamic, 2 static)", disk: name)
        }
        let mapOffset = UInt64(try h.u32le(at: 0x154))
        dataOffset = UInt64(try h.u32le(at: 0x158))
        size = try h.u64le(at: 0x170)
        blockSize = UInt64(try h.u32le(at: 0x178))
        blockExtra = UInt64(try h.u32le(at: 0x17C))
        let blocks = try h.u32le(at: 0x180)
        guard blockSize >= 512, blockSize <= 256 << 20, blockExtra <= 1 << 20 else {
            throw FWError(.corrupt, "VDI header at offset 0x178: block size \(blockSize), extra \(blockExtra)", disk: name)
        }
        guard UInt64(blocks) >= (size + blockSize - 1) / blockSize, blocks <= 16 << 20 else {
            throw FWError(.corrupt, "VDI header at offset 0x180: \(blocks) blocks for \(size) bytes", disk: name)
        }
        let m = try file.record(at: mapOffset, count: Int(blocks) * 4, "VDI block map")
        map = try (0..<Int(blocks)).map { try m.u32le(at: $0 * 4) }
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try readBlockMapped(file: file, size: size, blockSize: blockSize, what: "VDI", at: offset, into: buffer) { block in
            let entry = map[Int(block)]
            if entry >= 0xFFFF_FFFE { return .zero }
            let stride = try checkedAdd(blockSize, blockExtra, "VDI block stride", disk: name)
            let at = try checkedMultiply(UInt64(entry), stride, "VDI block offset", disk: name)
            return .host(try checkedAdd(dataOffset, at + blockExtra, "VDI block offset", disk: name))
        }
    }
}
