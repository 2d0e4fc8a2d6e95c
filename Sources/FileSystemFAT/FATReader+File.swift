import DiskImage
import FileSystems

/// A regular file's contents, streamed cluster by cluster (contiguous clusters in one read).
final class FATFile: FileContents {
    let size: UInt64
    private let reader: FATReader
    private let path: String
    private var position: UInt64 = 0
    private var cluster: UInt32
    /// Bytes of `cluster` already returned.
    private var offsetInCluster: UInt64 = 0

    init(reader: FATReader, firstCluster: UInt32, size: UInt64, path: String) {
        self.reader = reader
        self.cluster = firstCluster
        self.size = size
        self.path = path
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        do {
            return try fill(buffer)
        } catch let error as FWError {
            throw error.within(reader.place, path: path)
        }
    }

    private func fill(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let boot = reader.bootSector
        let clusterSize = UInt64(boot.clusterSize)
        var filled = 0
        while filled < buffer.count, position < size {
            if offsetInCluster == clusterSize {
                guard case .next(let n) = try reader.link(of: cluster) else {
                    throw FWError(.corrupt, "cluster chain ends at cluster \(cluster) before the file's \(size) bytes")
                }
                cluster = n
                offsetInCluster = 0
            }
            let want = min(UInt64(buffer.count - filled), size - position)
            // Extend over clusters that follow each other on disk.
            var runEnd = cluster
            var runBytes = clusterSize - offsetInCluster
            while runBytes < want, case .next(let n) = try reader.link(of: runEnd), n == runEnd + 1 {
                runEnd = n
                runBytes += clusterSize
            }
            let count = min(want, runBytes)
            let at = boot.offset(ofCluster: cluster) + offsetInCluster
            try reader.source.readExactly(at: at, into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + Int(count))]))
            filled += Int(count)
            position += count
            let consumed = offsetInCluster + count
            let whole = consumed / clusterSize
            if whole > 0, consumed % clusterSize == 0 {
                cluster += UInt32(whole - 1)
                offsetInCluster = clusterSize
            } else {
                cluster += UInt32(whole)
                offsetInCluster = consumed % clusterSize
            }
        }
        return filled
    }
}
