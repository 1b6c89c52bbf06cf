// Checks run under `mpirun -np 2` by Tests/EmberTests/DistributedTests.swift. Each check runs
// on every rank and compares against values worked out by hand (or against a one-process
// run that every rank computes for itself); a mismatch aborts the job naming the rank.
//
//   EmberDistributedChecks all        collectives, DDP parity, noSync, unused parameters, sampler, checkpoint
//   EmberDistributedChecks fail       rank 1 stops on a programmer error while rank 0 waits in a collective
//   EmberDistributedChecks abort      rank 1 calls ProcessGroup.abort while rank 0 waits in a collective
import Ember
import EmberDistributed
import Foundation

let group = try ProcessGroup.mpi()
let mode = CommandLine.arguments.dropFirst().first ?? "all"
var devices: [Device] = [.cpu]
if let cl = try? Device.opencl() { devices.append(cl) }

func expect(_ condition: Bool, _ what: @autoclosure () -> String) {
    if !condition { group.abort(what()) }
}

func close(_ a: [Float], _ b: [Float], tolerance: Float = 1e-5) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * Swift.max(1, abs($1)) }
}

let r = Float(group.rank), w = group.worldSize

func checkCollectives(_ device: Device) {
    // Rank r holds [r + 1, -r, 2r + 0.5]; sums, means, maxima, minima over ranks worked by hand.
    let values: (Int) -> [Float] = { q in let q = Float(q); return [q + 1, -q, 2 * q + 0.5] }
    let all = (0..<w).map(values)
    let expected: [ProcessGroup.ReduceOp: [Float]] = [
        .sum: (0..<3).map { i in all.reduce(0) { $0 + $1[i] } },
        .mean: (0..<3).map { i in all.reduce(0) { $0 + $1[i] } / Float(w) },
        .max: (0..<3).map { i in all.map { $0[i] }.max()! },
        .min: (0..<3).map { i in all.map { $0[i] }.min()! },
    ]
    for op in ProcessGroup.ReduceOp.allCases {
        let t = Tensor(shape: [3], data: values(group.rank), device: device)
        group.allReduce(t, op: op)
        expect(close(t.toArray(), expected[op]!), "allReduce \(op) float32 on \(device): \(t.toArray()) != \(expected[op]!)")
        if op != .mean {
            let i = Tensor(shape: [2], data: [Int32(group.rank + 1), Int32(-3 * group.rank)], device: device)
            group.allReduce(i, op: op)
            let columns = (0..<w).map { [Int32($0 + 1), Int32(-3 * $0)] }
            let want: [Int32] = (0..<2).map { k in
                let c = columns.map { $0[k] }
                return op == .sum ? c.reduce(0, +) : op == .max ? c.max()! : c.min()!
            }
            expect(i.toIntArray() == want, "allReduce \(op) int32 on \(device): \(i.toIntArray()) != \(want)")
        }
    }
    // Bool: max is or, min is and. Rank 0 holds [true, false, true], others [false, false, true].
    let mask = Tensor(shape: [3], data: group.rank == 0 ? [1, 0, 1] : [0, 0, 1], device: device) > 0.5
    let orMask = mask.clone(), andMask = mask.clone()
    group.allReduce(orMask, op: .max)
    group.allReduce(andMask, op: .min)
    expect(orMask.dtype == .bool && orMask.toBoolArray() == [true, false, true], "allReduce max bool on \(device): \(orMask.toBoolArray())")
    expect(andMask.toBoolArray() == [w == 1, false, true], "allReduce min bool on \(device): \(andMask.toBoolArray())")
    // Broadcast from the last rank: every rank gets [10 * root, 1].
    let root = w - 1
    let b = Tensor(shape: [2, 1], data: [r * 10, r], device: device)
    group.broadcast(b, root: root)
    expect(b.toArray() == [Float(root) * 10, Float(root)], "broadcast float32 on \(device): \(b.toArray())")
    let bi = Tensor(shape: [1], data: [Int32(group.rank * 7)], device: device)
    group.broadcast(bi, root: root)
    expect(bi.toIntArray() == [Int32(root * 7)], "broadcast int32 on \(device): \(bi.toIntArray())")
    // allGather: rank q contributed [q, q + 0.25].
    let gathered = group.allGather(Tensor(shape: [2], data: [r, r + 0.25], device: device))
    expect(gathered.count == w && gathered.enumerated().allSatisfy { q, t in t.toArray() == [Float(q), Float(q) + 0.25] && t.device == device },
           "allGather float32 on \(device): \(gathered.map { $0.toArray() })")
    let gi = group.allGather(Tensor(shape: [1], data: [Int32(100 + group.rank)], device: device))
    expect(gi.map { $0.toIntArray()[0] } == (0..<w).map { Int32(100 + $0) }, "allGather int32 on \(device): \(gi.map { $0.toIntArray() })")
    // reduceScatter: rank q holds [q + 1, 2(q + 1), ..., 2w(q + 1)] as [2w]; rank r gets elements
    // 2r and 2r + 1 of the sum, (k + 1) * sum_q (q + 1) for element k.
    let ranksSum = Float(w * (w + 1) / 2)
    let scattered = group.reduceScatter(Tensor(shape: [2 * w], data: (0..<(2 * w)).map { Float($0 + 1) * (r + 1) }, device: device), op: .sum)
    expect(scattered.toArray() == [Float(2 * group.rank + 1) * ranksSum, Float(2 * group.rank + 2) * ranksSum],
           "reduceScatter sum float32 on \(device): \(scattered.toArray())")
    let scatteredMax = group.reduceScatter(Tensor(shape: [w, 1], data: (0..<w).map { Int32($0 * 10 + group.rank) }, device: device), op: .max)
    expect(scatteredMax.shape == [1, 1] && scatteredMax.toIntArray() == [Int32(group.rank * 10 + w - 1)],
           "reduceScatter max int32 on \(device): \(scatteredMax.toIntArray())")
    group.barrier()
}

/// A small MLP, the same on every rank for a given seed.
func makeModel(_ device: Device) -> Sequential {
    Tensor.withRandomSeed(7) { Sequential(Linear(6, 32), ReLU(), Linear(32, 32), ReLU(), Linear(32, 3)) }.to(device)
}

/// The whole data set, the same on every rank: 2 * b * steps examples.
func makeData(_ count: Int) -> (Tensor, Tensor) {
    Tensor.withRandomSeed(11) { (Tensor.randn([count, 6]), Tensor.randint(0, 3, [count])) }
}

func parameters(_ model: Module) -> [Float] { model.parameters().flatMap { $0.toArray() } }

/// 2 ranks x `steps` steps of batch b end where one process with batch w * b ends.
func checkParity(_ device: Device, bucketCapMB: Double) {
    let steps = 20, b = 4
    let (x, y) = makeData(w * b * steps)
    let reference = makeModel(device)
    let referenceOpt = SGD(reference.parameters(), lr: 0.1, momentum: 0.9)
    for s in 0..<steps {
        let rows = Tensor(shape: [w * b], data: (0..<(w * b)).map { Int32(s * w * b + $0) })
        let loss = crossEntropy(reference(x.indexSelect(dim: 0, index: rows).to(device)), y.indexSelect(dim: 0, index: rows).to(device))
        referenceOpt.zeroGrad()
        loss.backward()
        referenceOpt.step()
    }
    // Rank 0's initial parameters differ from the others' until DDP broadcasts them.
    let local = Tensor.withRandomSeed(UInt64(100 + group.rank)) { Sequential(Linear(6, 32), ReLU(), Linear(32, 32), ReLU(), Linear(32, 3)) }
    if group.rank == 0 { try! local.loadStateDict(makeModel(.cpu).stateDict()) }
    local.to(device)
    let ddp = DistributedDataParallel(local, group: group, bucketCapMB: bucketCapMB, firstBucketMB: bucketCapMB / 4)
    let opt = SGD(local.parameters(), lr: 0.1, momentum: 0.9)
    for s in 0..<steps {
        let rows = Tensor(shape: [b], data: (0..<b).map { Int32(s * w * b + group.rank * b + $0) })
        let loss = crossEntropy(ddp(x.indexSelect(dim: 0, index: rows).to(device)), y.indexSelect(dim: 0, index: rows).to(device))
        opt.zeroGrad()
        loss.backward()
        opt.step()
    }
    let mine = parameters(local), theirs = parameters(reference)
    let worst = zip(mine, theirs).map { abs($0 - $1) }.max()!
    expect(close(mine, theirs, tolerance: 2e-5), "DDP parity on \(device) (bucketCapMB \(bucketCapMB), \(ddp.buckets.count) buckets): max difference \(worst) from one process")
    // And the replicas agree with each other exactly.
    let flat = Tensor(shape: [mine.count], data: mine)
    let first = flat.clone()
    group.broadcast(first, root: 0)
    expect(first.toArray() == mine, "DDP on \(device): replicas differ after \(steps) steps")
}

/// Rank 0 writes the checkpoint; every rank loads it into a model of its own.
func checkCheckpoint() {
    let id = Tensor(shape: [1], data: [Int32(getpid())])
    group.broadcast(id, root: 0)
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("ember-ddp-check-\(id.toIntArray()[0]).safetensors")
    let model = makeModel(.cpu)
    let ddp = DistributedDataParallel(model, group: group)
    do {
        try ddp.save(to: url)
        let fresh = Tensor.withRandomSeed(UInt64(50 + group.rank)) { Sequential(Linear(6, 32), ReLU(), Linear(32, 32), ReLU(), Linear(32, 3)) }
        try DistributedDataParallel(fresh, group: group).load(from: url)
        expect(parameters(fresh) == parameters(model), "checkpoint: rank \(group.rank) loaded different parameters")
    } catch {
        group.abort("checkpoint: \(error)")
    }
    group.barrier()
    if group.rank == 0 { try? FileManager.default.removeItem(at: url) }
}

/// Two micro-batches, the first under noSync, give the gradient of one batch of both.
func checkNoSync(_ device: Device) {
    let b = 3
    let (x, y) = makeData(2 * w * b)
    let model = makeModel(device)
    let ddp = DistributedDataParallel(model, group: group)
    for micro in 0..<2 {
        let rows = Tensor(shape: [b], data: (0..<b).map { Int32(micro * w * b + group.rank * b + $0) })
        let step = { crossEntropy(ddp(x.indexSelect(dim: 0, index: rows).to(device)), y.indexSelect(dim: 0, index: rows).to(device)).backward() }
        if micro == 0 {
            ddp.noSync(step)
            expect(ddp.lastSync.bytes == 0, "noSync on \(device): communicated \(ddp.lastSync.bytes) bytes")
        } else {
            step()
        }
    }
    let reference = makeModel(device)
    (crossEntropy(reference(x.to(device)), y.to(device)) * 2).backward()
    let got = model.parameters().flatMap { $0.grad!.toArray() }
    let want = reference.parameters().flatMap { $0.grad!.toArray() }
    expect(close(got, want, tolerance: 1e-5), "noSync accumulation on \(device) differs from one big batch")
}

/// Two heads; rank 0 uses head a, the others head b, so each head's gradient comes from
/// some ranks only, and the unused slots count as zero.
final class TwoHeads: Module {
    let a = Linear(4, 2)
    let b = Linear(4, 2)
    let c = Linear(4, 2)  // never used on any rank: its gradient stays nil
}

func checkUnused(_ device: Device) {
    let heads = Tensor.withRandomSeed(3) { TwoHeads() }.to(device)
    let ddp = DistributedDataParallel(heads, group: group, findUnusedParameters: true)
    let x = Tensor(shape: [1, 4], data: [1, 2, 3, 4], device: device)
    let head = group.rank == 0 ? heads.a : heads.b
    head(x).sum().backward()
    _ = ddp
    // d(sum(Wx + b))/dW = ones x^T, d/db = 1; rank 0 alone used a, the rest b.
    let aShare = 1 / Float(w), bShare = Float(w - 1) / Float(w)
    expect(close(heads.a.weight.grad!.toArray(), [1, 2, 3, 4, 1, 2, 3, 4].map { $0 * aShare }), "unused parameters on \(device): head a gradient \(heads.a.weight.grad!.toArray())")
    if w > 1 { expect(close(heads.b.bias!.grad!.toArray(), [bShare, bShare]), "unused parameters on \(device): head b bias gradient") }
    expect(heads.c.weight.grad == nil, "unused parameters on \(device): a parameter unused everywhere got a gradient")
}

/// Every index is read exactly once per epoch across ranks (plus PyTorch's padding), and the
/// order changes with the epoch.
func checkSampler() {
    let n = 11
    let data = TensorDataset(inputs: Tensor.arange(0, Float(n)).reshape([n, 1]), labels: Tensor.zeros([n]))
    let sampler = DistributedSampler(data, group: group, shuffle: true, seed: 5)
    var orders: [[Int]] = []
    for epoch in 0..<2 {
        sampler.setEpoch(epoch)
        let mine = sampler.indices()
        let gathered = group.allGather(Tensor(shape: [mine.count], data: mine.map { Int32($0) }))
        let all = gathered.flatMap { $0.toIntArray().map(Int.init) }
        let perRank = (n + w - 1) / w
        expect(all.count == perRank * w, "sampler: \(all.count) indices for \(w) ranks")
        expect(Set(all) == Set(0..<n), "sampler epoch \(epoch): indices \(all.sorted()) do not cover 0..<\(n)")
        expect(all.count - n == perRank * w - n, "sampler epoch \(epoch): padding")
        // The loader reads exactly this rank's share.
        let loader = DataLoader(data, batchSize: 2, sampler: sampler)
        let read = loader.flatMap { $0.inputs.toArray().map { Int($0) } }
        expect(read == mine, "sampler epoch \(epoch): DataLoader read \(read), sampler gave \(mine)")
        orders.append(mine)
    }
    expect(orders[0] != orders[1] || w > 4, "sampler: epochs 0 and 1 gave the same order \(orders[0])")
}

switch mode {
case "all":
    for device in devices {
        checkCollectives(device)
        checkParity(device, bucketCapMB: 25)
        checkParity(device, bucketCapMB: 0.004)
        checkNoSync(device)
        checkUnused(device)
    }
    checkSampler()
    checkCheckpoint()
    if group.rank == 0 { print("distributed checks passed on \(w) ranks, devices \(devices.map { "\($0)" }.joined(separator: ", "))") }
case "fail":
    if group.rank == 1 {
        _ = Tensor.zeros([2, 3]).matmul(Tensor.zeros([4, 5]))
    }
    group.allReduce(Tensor.ones([4]))
    print("rank \(group.rank) was not stopped")
case "abort":
    if group.rank == 1 { group.abort("the data file is missing") }
    group.allReduce(Tensor.ones([4]))
    print("rank \(group.rank) was not stopped")
default:
    group.abort("unknown mode \(mode)")
}
