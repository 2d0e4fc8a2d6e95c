import DiskImage
import FileSystems

/// Streams one regular file block by block: the block size list is read from the inode table as
/// the file is read (never loaded whole), a zero size is a sparse block, and the tail comes from
/// a fragment block when the inode names one. Memory: two block-sized buffers.
final class SquashFSFile: FileContents {
    let size: UInt64
    private let reader: SquashFSReader
    private let reference: UInt64
    private let inode: SquashFS.Inode
    private let blockSize: UInt64
    private let blockCount: UInt64
    /// Next entry of the block size list, and the next block's byte address.
    private var listPosition: SquashFS.MetadataPosition
    private var nextAddress: UInt64
    private var nextBlock: UInt64 = 0
    private var fragmentDone = false
    /// The current decoded chunk: `buffer[bufferOffset..<bufferLength]` not yet delivered.
    private var buffer: [UInt8]
    private var bufferOffset = 0
    private var bufferLength = 0
    private var delivered: UInt64 = 0
    /// True while `buffer` holds only zeros (runs of sparse blocks are then not refilled).
    private var bufferIsZero = true

    init(reader: SquashFSReader, reference: UInt64, inode: SquashFS.Inode) throws {
        self.reader = reader
        self.reference = reference
        self.inode = inode
        self.size = inode.size
        self.blockSize = UInt64(reader.blockSize)
        self.blockCount = inode.blockCount(blockSize: reader.blockSize)
        self.listPosition = inode.blockList
        self.nextAddress = inode.blocksStart
        self.buffer = [UInt8](repeating: 0, count: Int(reader.blockSize))
        if inode.hasFragment {
            let tail = size % blockSize
            guard UInt64(inode.fragmentOffset) + tail <= blockSize else {
                throw FWError.corrupt("squashfs file inode 0x\(String(reference, radix: 16)): tail of \(tail) bytes at offset \(inode.fragmentOffset) does not fit in a fragment block")
            }
        }
    }

    private var what: String { "file inode 0x\(String(reference, radix: 16))" }

    func read(into output: UnsafeMutableRawBufferPointer) throws -> Int {
        do {
            guard output.count > 0 else { return 0 }
            if bufferOffset == bufferLength {
                guard try fill() else { return 0 }
            }
            let n = min(output.count, bufferLength - bufferOffset)
            buffer.withUnsafeBytes { src in
                output.baseAddress!.copyMemory(from: src.baseAddress! + bufferOffset, byteCount: n)
            }
            bufferOffset += n
            delivered += UInt64(n)
            return n
        } catch let error as FWError {
            throw error.within(reader.place)
        }
    }

    /// Decodes the next block (or the fragment tail) into `buffer`; false at the end of the file.
    private func fill() throws -> Bool {
        bufferOffset = 0
        bufferLength = 0
        guard delivered < size else { return false }
        if nextBlock < blockCount {
            let expected = Int(min(blockSize, size - nextBlock * blockSize))
            let entry = try reader.store.read(4, at: &listPosition, limit: reader.superBlock.directoryTableStart,
                                              what: "squashfs block list of \(what)")
            let sizeField = try ByteCursor(entry, context: "squashfs block size").u32le(at: 0)
            if sizeField == 0 {
                // A sparse block: zeros, nothing stored.
                if !bufferIsZero {
                    buffer.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) }
                    bufferIsZero = true
                }
            } else {
                bufferIsZero = false
                let n = try reader.readDataBlock(at: nextAddress, sizeField: sizeField, into: &buffer,
                                                 what: "data block \(nextBlock) of \(what)")
                guard n == expected else {
                    throw FWError.corrupt("squashfs data block \(nextBlock) of \(what) (\(reader.compression.name)) decompressed to \(n) bytes, expected \(expected)")
                }
                let (address, overflow) = nextAddress.addingReportingOverflow(UInt64(sizeField & 0xFF_FFFF))
                guard !overflow else { throw FWError.corrupt("squashfs \(what): block addresses overflow") }
                nextAddress = address
            }
            nextBlock += 1
            bufferLength = expected
            return true
        }
        guard inode.hasFragment, !fragmentDone else {
            throw FWError.corrupt("squashfs \(what): data ends at \(delivered) of \(size) bytes")
        }
        fragmentDone = true
        bufferIsZero = false
        let tail = Int(size - delivered)
        let block = try reader.fragmentBlock(inode.fragment)
        let start = Int(inode.fragmentOffset)
        guard start + tail <= block.count else {
            throw FWError.corrupt("squashfs \(what): tail of \(tail) bytes at offset \(start) is outside its \(block.count)-byte fragment block \(inode.fragment)")
        }
        buffer.withUnsafeMutableBytes { dst in
            block.withUnsafeBytes { src in
                dst.baseAddress!.copyMemory(from: src.baseAddress! + start, byteCount: tail)
            }
        }
        bufferLength = tail
        return true
    }
}
