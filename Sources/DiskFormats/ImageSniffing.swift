import Codecs
import DiskImage

/// What the first bytes of a file say about it, by the same magic numbers `openDiskImage`
/// detects, without opening (or decompressing) the whole image: for finding the disk images in a
/// folder of unknown files.
public enum DiskImageSniff {
    /// A virtual disk container ("qcow2", "vmdk", "vhdx", "vpc", "vdi"), possibly inside wrappers
    /// ("xz+qcow2", "tar+vmdk").
    case container(String)
    /// Compressed or archived bytes whose first decoded bytes hold no container: `head` is the
    /// start of the decoded content (at most `headLimit` bytes), for the caller to look for a
    /// partition table or filesystem in; `format` names the wrappers ("gzip", "zip+xz").
    case wrapped(format: String, head: MemorySource)
    /// No container and no wrapper: a raw disk, a bare filesystem, or not an image at all.
    case raw
    /// A wrapper whose content cannot be decoded (damaged, unsupported) or is no disk.
    case unreadable(String)
}

/// How many decoded bytes a wrapped file's head keeps: enough for an MBR, both GPT sector sizes
/// and the superblocks of the filesystems fwassemble reads (btrfs's is at 64 KiB).
public let diskImageSniffHeadLimit = 256 << 10

/// Sniffs `source` (usually a `FileSource`): containers by magic, wrappers by decoding only their
/// first bytes (at most 8 MiB of compressed input).
public func sniffDiskImage(_ source: any ByteSource) -> DiskImageSniff {
    sniff(source, depth: 0)
}

/// A wrapper that cannot be read or decoded is an answer (`.unreadable`, with the reason), not a
/// failure of the sniff.
private func sniff(_ source: any ByteSource, depth: Int) -> DiskImageSniff {
    guard depth <= 4 else { return .unreadable("wrappers nested more than 4 deep") }
    do {
        return try sniffHead(source, depth: depth)
    } catch {
        return .unreadable("unreadable: \(FWError(error).message)")
    }
}

private func sniffHead(_ source: any ByteSource, depth: Int) throws -> DiskImageSniff {
    let bytes = try source.prefix(at: 0, count: 1024)
    let head = ByteCursor(bytes, context: "first bytes")
    let magic = DiskImageMagic.detect(bytes)
    if let container = magic?.container { return .container(container) }
    if try DiskImageMagic.hasVHDFooter(source) { return .container("vpc") }

    func decoded(_ wrapper: String, _ decoder: any StreamDecoder, _ input: any ByteSource) -> DiskImageSniff {
        guard let bytes = decodeHead(input, decoder) else { return .unreadable("\(wrapper): cannot decode") }
        let inner = MemorySource(bytes, name: source.name)
        switch sniff(inner, depth: depth + 1) {
        case .container(let f): return .container("\(wrapper)+\(f)")
        case .wrapped(let f, let h): return .wrapped(format: "\(wrapper)+\(f)", head: h)
        case .raw: return .wrapped(format: wrapper, head: inner)
        case .unreadable(let why): return .unreadable("\(wrapper)+\(why)")
        }
    }
    if magic == .xz { return decoded("xz", try XZDecoder(), source) }
    if magic == .gzip { return decoded("gzip", try GzipDecoder(), source) }
    if magic == .zstd { return decoded("zstd", try ZstdDecoder(), source) }
    if magic == .zip {
        do {
            return try sniffZip(head, source, depth: depth, decoded: decoded)
        } catch {
            return .unreadable("zip: \(FWError(error).message)")
        }
    }
    if magic == .tar {
        // An OVA: a tar holding a container. Any other tar (a rootfs archive) is not a disk.
        let entries: [(name: String, data: SliceSource)]
        do { entries = try CompressedWrappers.tarEntries(source) } catch { return .unreadable("tar: \(FWError(error).message)") }
        for entry in entries.prefix(64) {
            if case .container(let f) = sniff(entry.data, depth: depth + 1) { return .container("tar+\(f)") }
        }
        return .unreadable("tar without a disk image")
    }
    return .raw
}

/// A zip's first member: stored (sniffed as it is) or deflated (its first bytes decoded).
private func sniffZip(_ head: ByteCursor, _ source: any ByteSource, depth: Int,
                      decoded: (String, any StreamDecoder, any ByteSource) -> DiskImageSniff) throws -> DiskImageSniff {
    // The first local header: method (8), sizes, name and extra lengths (26, 28), then data.
    let local = ByteCursor(head.bytes, context: "zip local header")
    let method = try local.u16le(at: 8)
    let csize = try local.u32le(at: 18)
    let nameLength = try local.u16le(at: 26)
    let extraLength = try local.u16le(at: 28)
    let offset = 30 + UInt64(nameLength) + UInt64(extraLength)
    let length = csize == 0 || offset + UInt64(csize) > source.size ? source.size - min(offset, source.size) : UInt64(csize)
    let data = try source.slice(offset: offset, length: length)
    switch method {
    case 0:
        switch sniff(data, depth: depth + 1) {
        case .container(let f): return .container("zip+\(f)")
        case .wrapped(let f, let h): return .wrapped(format: "zip+\(f)", head: h)
        case .raw: return .wrapped(format: "zip", head: MemorySource(try data.prefix(at: 0, count: diskImageSniffHeadLimit), name: source.name))
        case .unreadable(let why): return .unreadable("zip+\(why)")
        }
    case 8:
        return decoded("zip", try GzipDecoder(raw: true), data)
    default:
        return .unreadable("zip: compression method \(method)")
    }
}

/// The first `diskImageSniffHeadLimit` decoded bytes of `input`, nil when the stream is damaged
/// before that.
private func decodeHead(_ input: any ByteSource, _ decoder: any StreamDecoder) -> [UInt8]? {
    struct Enough: Error {}
    var out: [UInt8] = []
    let chunk = 64 << 10
    var offset: UInt64 = 0
    do {
        while out.count < diskImageSniffHeadLimit, offset < input.size, offset < 8 << 20 {
            let piece = try input.prefix(at: offset, count: chunk)
            if piece.isEmpty { break }
            offset += UInt64(piece.count)
            try piece.withUnsafeBytes { raw in
                try decoder.feed(raw) { decodedBytes in
                    out += decodedBytes.prefix(diskImageSniffHeadLimit - out.count)
                    if out.count >= diskImageSniffHeadLimit { throw Enough() }
                }
            }
        }
    } catch is Enough {
    } catch {
        return out.count >= 4096 ? out : nil
    }
    return out.isEmpty ? nil : out
}
