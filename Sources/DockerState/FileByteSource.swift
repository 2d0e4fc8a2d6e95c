import DiskImage
import FileSystems

/// A file of a filesystem reader as random-access bytes (for the bbolt reader), over the
/// sequential `FileContents`: reads go forward through the stream in 64 KiB chunks kept in a
/// cache (at most `cacheBudget` bytes; beyond it the oldest are dropped); a chunk behind the
/// stream position that is no longer cached reopens the file. Never reads the file whole unless
/// asked for every byte. Used from one thread at a time, as its reader.
final class FileByteSource: ByteSource, @unchecked Sendable {
    let reader: any FileSystemReader
    let inode: UInt64
    let name: String
    let size: UInt64
    let place: FWError.Place
    static let chunk = 64 << 10
    static let cacheBudget = 64 << 20
    private var stream: (any FileContents)?
    private var position: UInt64 = 0
    private var chunks: [UInt64: [UInt8]] = [:]
    private var order: [UInt64] = []

    init(reader: any FileSystemReader, inode: UInt64, name: String) throws {
        self.reader = reader
        self.inode = inode
        self.name = name
        self.place = FWError.Place(disk: reader.sourceName)
        let file = try reader.openFile(inode)
        self.size = file.size
        self.stream = file
    }

    private func chunk(_ index: UInt64) throws -> [UInt8] {
        if let c = chunks[index] { return c }
        let start = index * UInt64(Self.chunk)
        if stream == nil || position > start {
            stream = try reader.openFile(inode)
            position = 0
        }
        guard let stream else { return [] }
        var buffer = [UInt8](repeating: 0, count: Self.chunk)
        while true {
            let current = position / UInt64(Self.chunk)
            var filled = 0
            while filled < Self.chunk {
                let n = try buffer.withUnsafeMutableBytes { try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[filled...])) }
                if n == 0 { break }
                filled += n
            }
            position += UInt64(filled)
            let bytes = Array(buffer[0..<filled])
            remember(current, bytes)
            if current == index || filled < Self.chunk { return current == index ? bytes : [] }
        }
    }

    private func remember(_ index: UInt64, _ bytes: [UInt8]) {
        guard chunks[index] == nil else { return }
        chunks[index] = bytes
        order.append(index)
        while order.count * Self.chunk > Self.cacheBudget, !order.isEmpty {
            chunks[order.removeFirst()] = nil
        }
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try readInPieces(size: size, at: offset, into: buffer) { at, rest in
            let c = try chunk(at / UInt64(Self.chunk))
            let inChunk = Int(at % UInt64(Self.chunk))
            guard inChunk < c.count else { return 0 }
            let n = min(rest.count, c.count - inChunk)
            c.withUnsafeBytes { src in
                UnsafeMutableRawBufferPointer(rebasing: rest[0..<n]).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[inChunk..<(inChunk + n)]))
            }
            return n
        }
    }
}
