import Codecs
import DiskImage

/// The VMDK sparse extent header ("KDMV", little-endian; VMware Virtual Disk Format 5.0).
struct VMDKSparseHeader {
    var version: UInt32          // 4
    var flags: UInt32            // 8
    var capacity: UInt64         // 12: sectors
    var grainSize: UInt64        // 20: sectors
    var numGTEsPerGT: UInt32     // 44
    var gdOffset: UInt64         // 56: sectors (GD_AT_END: in the footer)
    var compressAlgorithm: UInt16 // 77

    static let gdAtEnd = UInt64.max
    static let compressedGrains: UInt32 = 1 << 16
    static let markers: UInt32 = 1 << 17

    init(_ c: ByteCursor) throws {
        guard try c.array(at: 0, count: 4) == Array("KDMV".utf8) else {
            throw FWError.corrupt("\(c.context): bad magic")
        }
        version = try c.u32le(at: 4)
        flags = try c.u32le(at: 8)
        capacity = try c.u64le(at: 12)
        grainSize = try c.u64le(at: 20)
        numGTEsPerGT = try c.u32le(at: 44)
        gdOffset = try c.u64le(at: 56)
        compressAlgorithm = try c.u16le(at: 77)
    }
}

/// One sparse VMDK extent: monolithicSparse, a twoGbMaxExtentSparse piece, or streamOptimized
/// (deflate-compressed grains with markers, grain directory in the footer).
final class VMDKSparseExtent: DiskContainerSource {
    let file: any ByteSource
    let name: String
    let size: UInt64
    let format = "vmdk"
    private let grainBytes: UInt64
    private let gtEntries: UInt64
    private let gd: [UInt32]
    private let compressed: Bool
    private let hasMarkers: Bool
    private let tables: ClusterCache
    private let grains: ClusterCache

    init(_ file: any ByteSource, name: String, isStandalone: Bool) throws {
        self.file = file
        self.name = name
        var h = try VMDKSparseHeader(file.record(at: 0, count: 512, "VMDK sparse header"))
        guard (1...3).contains(h.version) else {
            throw FWError(.unsupported, "VMDK sparse extent version \(h.version) is not supported", disk: name)
        }
        if h.gdOffset == VMDKSparseHeader.gdAtEnd {
            // streamOptimized: the real header is the footer, 1024 bytes before the end.
            guard file.size >= 1536 else { throw FWError(.corrupt, "VMDK: no footer in a \(file.size)-byte file", disk: name) }
            h = try VMDKSparseHeader(file.record(at: file.size - 1024, count: 512, "VMDK footer"))
        }
        guard h.grainSize >= 1, h.grainSize <= 2048, h.grainSize & (h.grainSize - 1) == 0 else {
            throw FWError(.corrupt, "VMDK sparse header at offset 20: grain size \(h.grainSize) sectors", disk: name)
        }
        guard h.numGTEsPerGT >= 1, h.numGTEsPerGT <= 65536 else {
            throw FWError(.corrupt, "VMDK sparse header at offset 44: \(h.numGTEsPerGT) entries per grain table", disk: name)
        }
        compressed = h.flags & VMDKSparseHeader.compressedGrains != 0
        hasMarkers = h.flags & VMDKSparseHeader.markers != 0
        if compressed && h.compressAlgorithm != 1 {
            throw FWError(.unsupported, "VMDK: compression algorithm \(h.compressAlgorithm) is not supported (1, deflate, is)", disk: name)
        }
        size = try checkedMultiply(h.capacity, 512, "VMDK capacity", disk: name)
        grainBytes = h.grainSize * 512
        gtEntries = UInt64(h.numGTEsPerGT)
        let grainCount = (h.capacity + h.grainSize - 1) / h.grainSize
        let tableCount = (grainCount + gtEntries - 1) / gtEntries
        guard tableCount <= 8 << 20 else {
            throw FWError(.limitExceeded, "VMDK: \(tableCount) grain tables", disk: name)
        }
        let gdAt = try checkedMultiply(h.gdOffset, 512, "VMDK grain directory offset", disk: name)
        let d = try file.record(at: gdAt, count: Int(tableCount) * 4, "VMDK grain directory")
        gd = try (0..<Int(tableCount)).map { try d.u32le(at: $0 * 4) }
        tables = ClusterCache(entrySize: Int(gtEntries) * 4, budget: 8 << 20)
        grains = ClusterCache(entrySize: Int(grainBytes), budget: 32 << 20)
    }

    private func grainEntry(_ grain: UInt64) throws -> UInt32 {
        let table = grain / gtEntries
        let gtSector = gd[Int(table)]
        if gtSector == 0 { return 0 }
        let gt = try tables.value(UInt64(gtSector)) {
            try file.record(at: UInt64(gtSector) * 512, count: Int(gtEntries) * 4, "VMDK grain table \(table)").bytes
        }
        return try ByteCursor(gt, context: "VMDK grain table \(table)").u32le(at: Int(grain % gtEntries) * 4)
    }

    private func compressedGrain(_ sector: UInt32, grain: UInt64) throws -> [UInt8] {
        try grains.value(UInt64(sector)) {
            let at = UInt64(sector) * 512
            var dataAt = at
            var length: UInt64
            if hasMarkers {
                let m = try file.record(at: at, count: 12, "VMDK grain marker")
                length = UInt64(try m.u32le(at: 8))
                dataAt = at + 12
            } else {
                length = min(file.size - min(at, file.size), grainBytes * 2 + 512)
            }
            guard length > 0, length <= grainBytes * 2 + 4096 else {
                throw FWError(.corrupt, "VMDK compressed grain at offset \(at): size \(length) for a \(grainBytes)-byte grain", disk: name)
            }
            let input = try file.record(at: dataAt, count: Int(length), "VMDK compressed grain").bytes
            var output = [UInt8](repeating: 0, count: Int(grainBytes))
            do {
                _ = try input.withUnsafeBytes { inp in
                    try output.withUnsafeMutableBytes { try ClusterCodec.inflate(inp, into: $0, windowBits: 15) }
                }
            } catch let error as FWError {
                throw FWError(error.code, "VMDK compressed grain at offset \(at): \(error.message)", disk: name, cause: error)
            }
            return output
        }
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try readInPieces(size: size, at: offset, into: buffer) { pos, rest in
            let grain = pos / grainBytes
            let within = Int(pos % grainBytes)
            let n = min(rest.count, Int(grainBytes) - within)
            let out = UnsafeMutableRawBufferPointer(rebasing: rest[0..<n])
            let entry = try grainEntry(grain)
            if entry <= 1 {
                zeroFill(out)
            } else if compressed {
                let data = try compressedGrain(entry, grain: grain)
                data.withUnsafeBytes { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[within..<(within + n)])) }
            } else {
                let at = UInt64(entry) * 512 + UInt64(within)
                do {
                    try file.readExactly(at: at, into: out)
                } catch let error as FWError {
                    throw FWError(error.code, "VMDK grain \(grain) at offset \(UInt64(entry) * 512): \(error.message)", disk: name, cause: error)
                }
            }
            return n
        }
    }
}

/// A text VMDK descriptor (monolithicFlat, twoGbMaxExtentFlat/Sparse, ...): its extent lines
/// name the files holding the data, concatenated in order.
enum VMDKDescriptor {
    static func open(_ source: any ByteSource, directory: String, opener: ImageOpener) throws -> any ByteSource {
        let name = source.name
        guard source.size <= 1 << 20 else {
            throw FWError(.limitExceeded, "VMDK descriptor of \(source.size) bytes is too large", disk: name)
        }
        let text = String(decoding: try source.bytes(at: 0, count: Int(source.size)), as: UTF8.self)
        var parts: [any ByteSource] = []
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = raw.trimmingCharacters()
            if line.hasPrefix("parentCID"), !line.lowercased().contains("ffffffff") {
                throw FWError(.unsupported, "VMDK: differencing disks (with a parent) are not supported yet", disk: name)
            }
            let access = ["RW ", "RDONLY ", "NOACCESS "]
            guard access.contains(where: { line.hasPrefix($0) }) else { continue }
            // ACCESS SECTORS TYPE ["FILE" [OFFSET]]
            let quoteParts = line.split(separator: "\"", omittingEmptySubsequences: false)
            let fields = quoteParts[0].split(separator: " ")
            guard fields.count >= 3, let sectors = UInt64(fields[1]) else {
                throw FWError(.corrupt, "VMDK descriptor: bad extent line \"\(line)\"", disk: name)
            }
            let bytes = try checkedMultiply(sectors, 512, "VMDK extent size", disk: name)
            let type = String(fields[2])
            if type == "ZERO" {
                parts.append(ZeroSource(size: bytes, name: name))
                continue
            }
            guard quoteParts.count >= 3 else {
                throw FWError(.corrupt, "VMDK descriptor: extent line without a file name: \"\(line)\"", disk: name)
            }
            let fileName = String(quoteParts[1])
            let startSectors = UInt64(quoteParts[2].split(separator: " ").first ?? "0") ?? 0
            let path = try opener.resolve(fileName, directory: directory, what: "VMDK extent", disk: name, useBackingDir: false)
            let file = try FileSource(path: path)
            switch type {
            case "FLAT", "VMFS":
                let start = try checkedMultiply(startSectors, 512, "VMDK extent offset", disk: name)
                parts.append(try file.slice(offset: start, length: bytes, name: path))
            case "SPARSE":
                let extent = try VMDKSparseExtent(file, name: path, isStandalone: false)
                guard extent.size >= bytes else {
                    throw FWError(.corrupt, "VMDK extent \(fileName) holds \(extent.size) bytes, the descriptor says \(bytes)", disk: name)
                }
                parts.append(try extent.slice(offset: 0, length: bytes, name: path))
            default:
                throw FWError(.unsupported, "VMDK extent type \(type) is not supported yet", disk: name)
            }
        }
        guard !parts.isEmpty else {
            throw FWError(.corrupt, "VMDK descriptor names no extents", disk: name)
        }
        return try ConcatSource(parts: parts, name: name, format: "vmdk")
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
