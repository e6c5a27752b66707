// Screening: choosing a topic proposes its unit; "duplicate of this" fills the original's code.
(function () {
  "use strict";
  var topic = document.getElementById("topic_id");
  var unit = document.getElementById("unit_id");
  if (topic && unit) {
    topic.addEventListener("change", function () {
      var option = topic.options[topic.selectedIndex];
      if (option && option.dataset.unit) { unit.value = option.dataset.unit; }
    });
  }
  document.querySelectorAll(".use-original").forEach(function (button) {
    button.addEventListener("click", function () {
      document.querySelector("input[name=decision][value=not_referred]").checked = true;
      document.getElementById("reason").value = "duplicate";
      document.getElementById("duplicate_of").value = button.dataset.code;
    });
  });
})();
