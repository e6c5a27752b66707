/* The console's test phone: plays what the server says, sends keys, records, counts time.
   No call logic here: every answer from the server says what to do next (data.do). */
(function () {
  "use strict";
  var root = document.getElementById("phone");
  if (!root) { return; }
  var csrf = root.dataset.csrf;
  var statusEl = document.getElementById("phone-status");
  var transcript = document.getElementById("phone-transcript");
  var callBtn = document.getElementById("phone-call");
  var hangBtn = document.getElementById("phone-hangup");
  var keyBtns = Array.prototype.slice.call(document.querySelectorAll("#phone-keypad .key"));

  var cur = null;          // the answer being carried out
  var audio = null;        // the prompt playing
  var playedMs = 0;        // of the current answer's prompts
  var timer = null;
  var digits = "";
  var rec = null;          // {recorder, chunks, stream, endedBy, silence}
  var busy = false;        // a POST is on its way: keys wait for the next answer

  function say(text) { statusEl.textContent = text; }
  function line(text, who) {
    var li = document.createElement("li");
    li.textContent = text;
    li.className = who;
    transcript.appendChild(li);
  }
  function setInCall(on) {
    callBtn.disabled = on;
    hangBtn.disabled = !on;
    keyBtns.forEach(function (b) { b.disabled = !on; });
  }
  function clearTimer() { if (timer) { clearTimeout(timer); timer = null; } }
  function stopAudio() {
    if (audio) {
      playedMs += Math.round(audio.currentTime * 1000);
      audio.onended = null; audio.onerror = null; audio.pause(); audio = null;
    }
  }

  function post(url, fields, blob) {
    var body = new FormData();
    Object.keys(fields).forEach(function (k) { body.append(k, fields[k]); });
    if (blob) { body.append("audio", blob, "take.webm"); }
    busy = true;
    return fetch(url, { method: "POST", body: body, credentials: "same-origin",
                        headers: { "X-CSRFToken": csrf, "Accept": "application/json" } })
      .then(function (r) {
        return r.json().then(function (data) {
          if (!r.ok) { throw new Error(data.error || ("HTTP " + r.status)); }
          return data;
        });
      })
      .finally(function () { busy = false; });
  }

  function send(fields, blob) {
    if (!cur) { return; }
    var c = cur;
    clearTimer(); stopAudio();
    cur = null;
    fields.n = c.n;
    post(c.step_url, fields, blob).then(handle).catch(function (e) { say("خطا: " + e.message); });
  }

  function playAll(prompts, done) {
    var i = 0;
    function next() {
      if (!cur) { return; }
      if (audio) { playedMs += Math.round((audio.duration || 0) * 1000); audio = null; }
      if (i >= prompts.length) { done(); return; }
      var p = prompts[i++];
      line(p.text || p.name, "heard");
      var a = new Audio(p.url);
      var moved = false;
      var once = function () { if (!moved && audio === a) { moved = true; next(); } };
      audio = a;
      a.onended = once;
      a.onerror = once;  // a missing prompt is skipped, as Asterisk does
      var played = a.play();
      if (played && played.catch) { played.catch(once); }
    }
    next();
  }

  function beep(then) {
    var done = false;
    var go = function () { if (!done) { done = true; then(); } };
    setTimeout(go, 400);  // a suspended audio context never ends the tone: recording starts anyway
    try {
      var ctx = new (window.AudioContext || window.webkitAudioContext)();
      var osc = ctx.createOscillator();
      osc.frequency.value = 1000;
      osc.connect(ctx.destination);
      osc.start(); osc.stop(ctx.currentTime + 0.25);
      osc.onended = function () { ctx.close(); go(); };
    } catch (e) { go(); }
  }

  function handle(a) {
    cur = a; playedMs = 0; digits = ""; clearTimer();
    root.dataset.n = a.n; root.dataset.do = a.do;  // where the call is (for people and tests reading the page)
    switch (a.do) {
      case "play":
        say("در حال پخش");
        playAll(a.prompts, function () { send({ event: "done", played_ms: playedMs }); });
        break;
      case "key":
        say("یک کلید بزنید");
        playAll(a.prompts, function () {
          timer = setTimeout(function () { send({ event: "timeout" }); }, a.timeout_ms);
        });
        break;
      case "digits":
        say("شماره را وارد کنید و # بزنید");
        playAll(a.prompts, function () { armDigitsTimer(); });
        break;
      case "record":
        say("پس از بوق صحبت کنید؛ برای پایان # بزنید");
        playAll(a.prompts, function () { beep(startRecording); });
        break;
      case "wait":
        say("لطفاً صبر کنید");
        timer = setTimeout(function () { send({ event: "done" }); }, (a.seconds || 1) * 1000);
        break;
      case "transfer":
        playAll(a.prompts, function () { ended("تماس به کارشناس پاسخگو وصل می‌شود (در تلفن آزمایشی، پایان تماس)"); });
        break;
      default:
        ended("تماس پایان یافت");
    }
  }

  function armDigitsTimer() {
    clearTimer();
    if (!cur || cur.do !== "digits") { return; }
    timer = setTimeout(function () { send({ event: "digits", digits: digits, timed_out: "1" }); }, cur.timeout_ms);
  }

  function ended(text) {
    clearTimer(); stopAudio(); cur = null;
    root.dataset.do = "end";
    say(text); line(text, "end");
    setInCall(false);
  }

  function startRecording() {
    if (!cur || cur.do !== "record") { return; }
    var c = cur;
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      if (cur !== c) { stream.getTracks().forEach(function (t) { t.stop(); }); return; }
      var recorder = new MediaRecorder(stream);
      rec = { recorder: recorder, chunks: [], stream: stream, endedBy: "timeout", sent: false, answer: c };
      var r = rec;
      recorder.ondataavailable = function (e) { if (e.data && e.data.size) { r.chunks.push(e.data); } };
      recorder.onstop = function () {
        stream.getTracks().forEach(function (t) { t.stop(); });
        var blob = new Blob(r.chunks, { type: recorder.mimeType || "audio/webm" });
        if (r.onSent) { r.onSent(blob); return; }
        send({ event: "recorded", ended_by: r.endedBy }, blob.size ? blob : null);
      };
      recorder.start(250);
      say("در حال ضبط…");
      line("(ضبط صدای شما)", "caller");
      timer = setTimeout(function () { stopRecording("timeout"); }, c.max_seconds * 1000);
      watchSilence(stream, c.silence_seconds, r);
    }).catch(function (e) { say("میکروفون در دسترس نیست: " + e.message); });
  }

  function watchSilence(stream, seconds, r) {
    // The phone's rule: recording ends after `seconds` of silence once the caller has spoken.
    if (!seconds || !window.AudioContext) { return; }
    var ctx = new AudioContext();
    if (ctx.state === "suspended") { ctx.resume(); }
    var analyser = ctx.createAnalyser();
    ctx.createMediaStreamSource(stream).connect(analyser);
    var buf = new Float32Array(analyser.fftSize);
    var quietSince = Date.now();
    r.silence = setInterval(function () {
      analyser.getFloatTimeDomainData(buf);
      var sum = 0;
      for (var i = 0; i < buf.length; i++) { sum += buf[i] * buf[i]; }
      var loud = Math.sqrt(sum / buf.length) > 0.0056;  // about -45 dBFS
      if (loud) { quietSince = Date.now(); }
      else if (Date.now() - quietSince > seconds * 1000) { stopRecording("timeout"); }
    }, 100);
    r.ctx = ctx;
  }

  function stopRecording(endedBy, onSent) {
    var r = rec;
    if (!r) { return; }
    rec = null;
    clearTimer();
    if (r.silence) { clearInterval(r.silence); r.ctx.close(); }
    r.endedBy = endedBy;
    r.onSent = onSent || null;
    if (r.recorder.state !== "inactive") { r.recorder.stop(); }
  }

  function press(key) {
    if (!cur || busy) { return; }
    line("کلید " + key, "caller");
    var a = cur;
    if (a.do === "record") {
      if (key === "#" && rec) { stopRecording("dtmf"); }
      return;
    }
    if (a.do === "play" || a.do === "key") {
      if (a.keys.indexOf(key) < 0) { return; }
      stopAudio();
      send({ event: "key", key: key, played_ms: playedMs });
      return;
    }
    if (a.do === "digits") {
      stopAudio();  // a digit during the prompts stops them (it is the first digit)
      if (key === "#") { send({ event: "digits", digits: digits }); return; }
      if (key === "*" || /[0-9]/.test(key)) { digits += key; }
      if (digits.length >= a.max_digits) { send({ event: "digits", digits: digits }); return; }
      armDigitsTimer();
    }
  }

  function hangup() {
    if (!cur && !rec) { return; }
    var a = cur || (rec && rec.answer);
    var finish = function () {
      post(a.hangup_url, {}).then(function () { ended("تماس را قطع کردید"); })
        .catch(function (e) { say("خطا: " + e.message); });
    };
    if (rec && cur && cur.do === "record") {
      // Whoever spoke and hung up keeps the message: the take goes first, then the hang-up.
      var c = cur;
      stopRecording("hangup", function (blob) {
        cur = null; stopAudio();
        var fields = { n: c.n, event: "recorded", ended_by: "hangup" };
        post(c.step_url, fields, blob.size ? blob : null).then(finish, finish);
      });
      return;
    }
    clearTimer(); stopAudio(); cur = null;
    finish();
  }

  document.getElementById("phone-dial").addEventListener("submit", function (e) {
    e.preventDefault();
    transcript.textContent = "";
    setInCall(true);
    say("در حال تماس…");
    post(root.dataset.startUrl, {
      line: document.getElementById("phone-line").value,
      caller: document.getElementById("phone-caller").value
    }).then(handle).catch(function (err) { say("خطا: " + err.message); setInCall(false); });
  });
  hangBtn.addEventListener("click", hangup);
  window.addEventListener("pagehide", function () {
    // Leaving the page hangs up, as closing a phone does (the token goes in the form: a beacon has no headers).
    var a = cur || (rec && rec.answer);
    if (!a || !navigator.sendBeacon) { return; }
    var body = new FormData();
    body.append("csrf_token", csrf);
    navigator.sendBeacon(a.hangup_url, body);
  });
  keyBtns.forEach(function (b) { b.addEventListener("click", function () { press(b.dataset.key); }); });
  document.addEventListener("keydown", function (e) {
    if (e.target && (e.target.tagName === "INPUT" || e.target.tagName === "SELECT")) { return; }
    if (/^[0-9*#]$/.test(e.key)) { e.preventDefault(); press(e.key); }
  });
})();
